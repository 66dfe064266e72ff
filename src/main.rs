//! `kiln`: the console and CLI. Links no libtorch (DESIGN §1).

fn main() -> std::process::ExitCode {
    kiln::cli::main()
}
