pub mod bench;
pub mod broker;
pub mod client_args;
pub mod consume;
pub mod dev;
pub mod group;
pub mod produce;
pub mod topic;
