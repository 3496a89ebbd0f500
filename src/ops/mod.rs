//! The operations, one module per command. Each takes targets and options and returns a
//! serialisable report; only `cli` prints. `model` (the model manifest and the OMS facts
//! signing and verification share) and `components` (layer paths) serve several commands.

pub mod archives;
pub mod attach;
pub mod attest;
pub mod components;
pub mod copy;
pub mod discover;
pub mod inspect;
pub mod keygen;
pub mod model;
pub mod pull;
pub mod push;
pub mod sign;
pub mod slots;
pub mod verify;
pub mod verify_blob;
