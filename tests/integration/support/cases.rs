//! One case list for tests that run against several kinds of registry. A case is a function
//! taking the [`RegistryKind`](super::RegistryKind) to run on; [`registry_cases!`] lists each
//! case once with the kinds it runs on and makes one `#[test]` per pair, named
//! `<case>::<kind>` (`sign_reference_then_every_tool_accepts::gcr`), so nextest runs them in
//! parallel and a failure names both. Adding a registry kind to a case is one word.

/// ```ignore
/// registry_cases! {
///     sign_reference_then_every_tool_accepts: [distribution, gcr, cue];
///     certificate_chain_round_trip: [distribution, gcr];
/// }
/// ```
#[macro_export]
macro_rules! registry_cases {
    ($($case:ident: [$($kind:ident),+ $(,)?];)+) => {
        $(
            mod $case {
                $(
                    #[test]
                    fn $kind() {
                        super::$case($crate::support::RegistryKind::named(stringify!($kind)));
                    }
                )+
            }
        )+
    };
}
