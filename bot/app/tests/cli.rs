//! The `resolutionflow` binary, run the way operators and scripts run it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_resolutionflow");

/// The binary in an empty directory with no RF_* settings from the caller's environment.
fn command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("RF_") {
            command.env_remove(key);
        }
    }
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.1 GET; returns the status code.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn the_default_command_serves_healthz_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = command(dir.path())
        .env("RF_LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut status = None;
    while started.elapsed() < Duration::from_secs(5) {
        status = get_status(port, "/healthz");
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = get_status(port, "/readyz");
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        status,
        Some(200),
        "no answer within 5 s:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ready, Some(200));
    assert!(
        dir.path().join("resolutionflow.db").exists(),
        "the default SQLite file is created"
    );
    assert!(
        dir.path().join("resolutionflow.key").exists(),
        "a master key is generated"
    );
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = command(dir.path())
        .args(["serve", "--no-console"])
        .env("RF_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while get_status(port, "/healthz").is_none() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_piped_console_script_runs_a_whole_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .args(["console", "--no-http"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script = "/as Jane engineer\n/rf printer offline\n1\n1\nnote tried password=Hunter2! on the web page\nresolve restarted the spooler\nexport md\n/quit\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("[#helpdesk] Jane (engineer)> /rf printer offline"),
        "input is echoed:\n{stdout}"
    );
    assert!(
        stdout.contains("Resolved by Jane: restarted the spooler"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Note from Jane: tried password=[REDACTED:password]"),
        "{stdout}"
    );
    // The typed line is echoed back to the terminal; what leaves in the ticket note is clean.
    let export = &stdout[stdout.find("──── session-").expect("an export")..];
    assert!(!export.contains("Hunter2"), "{export}");
}

#[test]
fn validating_a_broken_flow_names_file_node_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "id: broken\ntitle: Broken\nkind: troubleshooting\nnodes:\n  - id: ask\n    type: question\n    text: Is it on?\n    branches:\n      - {label: \"Yes\", next: fixed}\n      - {label: \"No\", next: power-on}\n  - id: fixed\n    type: solution\n    text: It was on.\n",
    )
    .unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "id: good\ntitle: Good\nkind: procedural\nsections:\n  - title: S\n    steps: [{text: Do it}]\n").unwrap();
    let output = command(dir.path())
        .args(["flows", "validate"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: node `ask`: branch \"No\" points to `power-on`, which does not exist",
            broken.display()
        )),
        "{stderr}"
    );
    assert!(stdout.contains("1 valid, 1 invalid"), "{stdout}");
    let ok = command(dir.path())
        .args(["flows", "validate"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(ok.status.success());
}

#[test]
fn importing_skips_invalid_files_and_reports_versions() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(flows.join("a.yaml"), "id: custom-a\ntitle: Custom A\nkind: procedural\nsections:\n  - title: S\n    steps: [{text: Do it}]\n").unwrap();
    std::fs::write(
        flows.join("b.yaml"),
        "id: custom-b\ntitle: \nkind: procedural\n",
    )
    .unwrap();
    let first = command(dir.path())
        .args(["flows", "import"])
        .arg(&flows)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("created   custom-a (v1)"), "{stdout}");
    assert!(String::from_utf8_lossy(&first.stderr).contains("not imported"));
    std::fs::write(flows.join("a.yaml"), "id: custom-a\ntitle: Custom A, revised\nkind: procedural\nsections:\n  - title: S\n    steps: [{text: Do it}]\n").unwrap();
    std::fs::remove_file(flows.join("b.yaml")).unwrap();
    let second = command(dir.path())
        .args(["flows", "import"])
        .arg(&flows)
        .output()
        .unwrap();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("updated   custom-a (v2)"));

    let out = dir.path().join("export");
    let export = command(dir.path())
        .args(["flows", "export"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert!(out.join("custom-a.yaml").exists());
    let again = command(dir.path())
        .args(["flows", "validate"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "exported flows validate: {}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn config_default_prints_the_defaults_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .args(["config", "default"])
        .env(
            "RF_MASTER_KEY",
            "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        stdout.contains("url = \"sqlite://./resolutionflow.db\""),
        "{stdout}"
    );
    assert!(stdout.contains("listen = \"127.0.0.1:8080\""), "{stdout}");
    assert!(!stdout.contains("c2VjcmV0"), "{stdout}");
}

#[test]
fn a_bad_setting_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("resolutionflow.toml"),
        "[database]\nurll = \"x\"\n",
    )
    .unwrap();
    let output = command(dir.path())
        .args(["flows", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown field"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = command(tempfile::tempdir().unwrap().path())
        .args(["flows", "list"])
        .env("RF_DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unsupported database URL"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn link_prints_a_companion_url_for_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .args(["console", "--no-http"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"/rf printer offline\nlink\n")
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
    let url = stdout
        .split_whitespace()
        .find(|w| w.contains("/auth/link?token="))
        .unwrap_or_else(|| panic!("no link in:\n{stdout}"))
        .trim_matches(['<', '>'])
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:8080/auth/link?token="),
        "{url}"
    );

    let sessions = command(dir.path())
        .args(["flows", "list"])
        .output()
        .unwrap();
    assert!(sessions.status.success());
    let bad = command(dir.path())
        .args(["link", "not-a-session"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid session id"));
}

#[test]
fn team_settings_print_and_apply_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let shown = command(dir.path())
        .args(["team", "settings"])
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let mut settings: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        settings["escalation_channels"][0]["channel"],
        "#escalations"
    );
    assert_eq!(settings["ladder"]["steps"].as_array().unwrap().len(), 4);
    settings["ladder"]["cap"] = 2.into();
    settings["idle"]["remind_after_seconds"] = 300.into();
    let file = dir.path().join("team.json");
    std::fs::write(&file, serde_json::to_vec(&settings).unwrap()).unwrap();
    let applied = command(dir.path())
        .args(["team", "settings", "--set"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let again: serde_json::Value = serde_json::from_slice(
        &command(dir.path())
            .args(["team", "settings"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(again["ladder"]["cap"], 2);
    assert_eq!(again["idle"]["remind_after_seconds"], 300);
    std::fs::write(
        &file,
        "{\"ladder\": {\"steps\": [{\"after_seconds\": \"soon\"}]}}",
    )
    .unwrap();
    let bad = command(dir.path())
        .args(["team", "settings", "--set"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not valid team settings"));
}
