//! Flow files: the bundled samples, and validating, importing and exporting folders of YAML.

use anyhow::Context;
use rf_core::Store;
use rf_core::flow::{Flow, FlowFileError, FlowSource, SaveOutcome, parse_flow_yaml};
use rf_core::ids::AccountId;
use rf_core::time::Timestamp;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

/// The bundled sample flows, validated.
pub fn samples() -> Vec<Flow> {
    SAMPLES
        .iter()
        .filter_map(
            |(name, text)| match parse_flow_yaml(&format!("flows/{name}"), text) {
                Ok(flow) => Some(flow),
                Err(e) => {
                    // The sample test keeps this from ever happening in a release.
                    tracing::error!(error = %e, "a bundled sample flow is invalid; skipped");
                    None
                }
            },
        )
        .collect()
}

/// A flow file read from disk: the flow, or everything wrong with it.
#[derive(Debug)]
pub struct LoadedFile {
    pub path: PathBuf,
    pub result: Result<Flow, FlowFileError>,
}

/// Every `.yaml`/`.yml` file under the given paths (files or folders), in name order.
pub fn read_flow_files(paths: &[PathBuf]) -> anyhow::Result<Vec<LoadedFile>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading folder {}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{} does not exist", path.display());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let result = parse_flow_yaml(&path.display().to_string(), &text);
            Ok(LoadedFile { path, result })
        })
        .collect()
}

/// Saves valid flows into an account. Invalid files are skipped (nothing from them is imported).
pub async fn import(
    store: &dyn Store,
    account: AccountId,
    flows: &[&Flow],
    source: FlowSource,
    now: Timestamp,
) -> anyhow::Result<Vec<(String, SaveOutcome, i32)>> {
    let mut outcomes = Vec::new();
    for flow in flows {
        let (summary, outcome) = store
            .save_flow(account, flow, source, now)
            .await
            .with_context(|| format!("saving flow {}", flow.meta.slug))?;
        outcomes.push((summary.slug, outcome, summary.version));
    }
    Ok(outcomes)
}

/// Writes every flow of an account to `<dir>/<id>.yaml`; returns how many were written.
pub async fn export(store: &dyn Store, account: AccountId, dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let summaries = store.list_flows(account).await?;
    for summary in &summaries {
        let record = store.get_flow(account, summary.id).await?;
        let path = dir.join(format!("{}.yaml", summary.slug));
        std::fs::write(&path, record.flow.to_yaml())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(summaries.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_flows_is_embedded_and_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../flows");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            .count();
        assert!(files >= 10);
        assert_eq!(
            super::SAMPLES.len(),
            files,
            "the binary embeds every sample"
        );
        assert_eq!(super::samples().len(), files, "and every one validates");
    }
}
