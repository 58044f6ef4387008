//! `resolutionflow`: see `resolutionflow --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    resolutionflow::cli::main()
}
