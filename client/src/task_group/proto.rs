//! The task-group protocol's generated types and gRPC stubs
//! (`proto/weir/tasks/v1/tasks.proto`).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("weir.tasks.v1");
