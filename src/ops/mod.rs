//! The operations, one module per command. Each takes targets and options and returns a
//! serialisable report; only `cli` prints.

pub mod push;
pub mod components;
pub mod pull;
pub mod attach;
pub mod copy;
pub mod discover;
pub mod sign;
pub mod verify;
