#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    rds_iam_proxy::main()
}
