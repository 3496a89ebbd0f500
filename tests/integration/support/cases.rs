//! One case list for tests that run against several kinds of registry. A case is a function
//! taking the [`RegistryKind`] to run on, or the [`Place`] (a registry kind, or `layout`: an
//! `oci:` layout folder); [`registry_cases!`] lists each case once with the kinds it runs on
//! and makes one `#[test]` per pair, named `<case>::<kind>`
//! (`sign_reference_then_every_tool_accepts::gcr`), so nextest runs them in parallel and a
//! failure names both. Adding a registry kind to a case is one word.

use super::RegistryKind;

/// Where a case's model lives: a registry of one kind, started for the test, or an `oci:`
/// layout folder.
#[derive(Clone, Debug)]
pub enum Place {
    Registry(RegistryKind),
    Layout,
}

impl From<RegistryKind> for Place {
    fn from(kind: RegistryKind) -> Place {
        Place::Registry(kind)
    }
}

/// What a case takes, made from its name in a case list.
pub trait CaseKind {
    fn named(name: &str) -> Self;
}

impl CaseKind for RegistryKind {
    fn named(name: &str) -> RegistryKind {
        RegistryKind::named(name)
    }
}

impl CaseKind for Place {
    /// `layout`, or an anonymous registry kind's name.
    fn named(name: &str) -> Place {
        match name {
            "layout" => Place::Layout,
            kind => Place::Registry(RegistryKind::named(kind)),
        }
    }
}

/// ```ignore
/// registry_cases! {
///     sign_reference_then_every_tool_accepts: [distribution, gcr, cue];
///     certificate_chain_round_trip: [distribution, gcr];
///     four_parties: [distribution, cue, layout]; // `fn four_parties(place: Place)`
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
                        super::$case($crate::support::CaseKind::named(stringify!($kind)));
                    }
                )+
            }
        )+
    };
}
