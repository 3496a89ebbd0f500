//! The operations, one module per command. Each takes targets and options and returns a
//! serialisable report; only `cli` prints.

pub mod attach;
pub mod components;
pub mod copy;
pub mod discover;
pub mod pull;
pub mod push;
pub mod sign;
pub mod verify;
