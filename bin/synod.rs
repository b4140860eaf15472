//! The `synod` binary: parse the command line, call the library, map errors to
//! exit codes. Everything else lives in the library (`src/`).

fn main() -> std::process::ExitCode {
    synod::cli::main()
}
