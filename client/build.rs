//! Generates the task-group gRPC types and client/server stubs from
//! `proto/weir/tasks/v1/tasks.proto`, compiled by `protox` (pure Rust) so
//! no `protoc` needs to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/weir/tasks/v1/tasks.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
