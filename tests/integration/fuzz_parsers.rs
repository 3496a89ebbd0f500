//! Property tests (proptest, bounded: a few hundred cases each, seconds in all) for the
//! parsers a hostile registry or file feeds: references, manifests and indexes, Sigstore
//! bundles and in-toto statements, and the layer-path check. None may panic; what has a
//! round trip keeps it; a path the check accepts never leaves the output folder; a bundle
//! changed anywhere never verifies as something else.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use modelsign::oci::{Descriptor, Index, MEDIA_TYPE_IMAGE_MANIFEST, Manifest};
use modelsign::ops::components::{components, unsafe_path_reason};
use modelsign::reference::Reference;
use modelsign::sign::statement::{Statement, Subject};
use modelsign::sign::{Algorithm, Signer, SigningKey, TrustPolicy, verify_bundle};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    // Bounded for the normal suite; PROPTEST_CASES runs longer.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(384);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn hex64() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

/// A descriptor-shaped JSON value, sometimes with wrong types or missing fields.
fn descriptor_json() -> impl Strategy<Value = Value> {
    (
        prop_oneof![12 => Just(json!("application/vnd.cncf.model.weight.v1.raw")), 1 => any_json()],
        prop_oneof![12 => hex64().prop_map(|h| json!(format!("sha256:{h}"))), 1 => any_json()],
        prop_oneof![12 => any::<u64>().prop_map(|n| json!(n)), 1 => any::<i64>().prop_map(|n| json!(n)), 1 => any_json()],
        prop::collection::btree_map(
            prop_oneof![Just("org.cncf.model.filepath".to_string()), Just("org.opencontainers.image.title".to_string()), ".{0,6}"],
            prop_oneof![
                16 => "[a-z]{1,8}(/[a-z._-]{1,8}){0,2}".prop_map(Value::from),
                4 => path_like().prop_map(Value::from),
                1 => any_json(),
            ],
            0..3,
        ),
    )
        .prop_map(|(media_type, digest, size, annotations)| {
            json!({"mediaType": media_type, "digest": digest, "size": size, "annotations": annotations})
        })
}

/// Paths as an attacker writes them: separators, dots, `..`, backslashes, NUL, drive letters.
fn path_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("C:".to_string()),
        Just("a\\..".to_string()),
        Just("\0".to_string()),
        Just(".modelsign-partial".to_string()),
        "[a-zA-Z0-9._ -]{1,8}",
        ".{1,4}",
    ];
    (any::<bool>(), prop::collection::vec(segment, 1..6)).prop_map(|(absolute, parts)| {
        let joined = parts.join("/");
        if absolute { format!("/{joined}") } else { joined }
    })
}

/// Whether `path`, joined to an output folder, stays inside it (lexically).
fn stays_inside(path: &str) -> bool {
    let mut depth = 0i32;
    for c in Path::new(path).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    depth > 0
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn references_never_panic_and_round_trip(s in prop_oneof![
        ".{0,40}",
        "(oci:)?[a-z0-9.:/_@-]{0,40}",
        "[a-z0-9.-]{1,10}(:[0-9]{1,5})?/[a-z0-9/._-]{1,20}(:[A-Za-z0-9._-]{1,10})?(@sha256:[0-9a-f]{64})?",
    ]) {
        if let Ok(r) = s.parse::<Reference>() {
            let again: Reference = r.to_string().parse().expect("a printed reference parses");
            prop_assert_eq!(again, r);
        }
    }

    #[test]
    fn well_formed_references_parse_to_what_was_written(
        host in "[a-z0-9]{1,8}(\\.[a-z0-9]{1,5})?(:[0-9]{1,5})?",
        repo in "[a-z0-9]{1,5}((\\.|_|__|-)[a-z0-9]{1,5})?(/[a-z0-9]{1,5}){0,3}",
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9._-]{0,20}"),
        digest in proptest::option::of(hex64()),
    ) {
        let mut s = format!("{host}/{repo}");
        if let Some(t) = &tag { s.push(':'); s.push_str(t); }
        if let Some(d) = &digest { s.push_str("@sha256:"); s.push_str(d); }
        let r: Reference = s.parse().map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
        prop_assert_eq!(r.registry(), Some(host.as_str()));
        prop_assert_eq!(r.tag.as_deref(), tag.as_deref());
        prop_assert_eq!(r.to_string(), s);
    }

    #[test]
    fn accepted_layer_paths_never_escape(path in prop_oneof![path_like(), ".{0,30}"]) {
        if unsafe_path_reason(&path).is_none() {
            prop_assert!(stays_inside(&path), "accepted {path:?}");
            prop_assert!(!path.contains('\\') && !path.contains('\0'), "accepted {path:?}");
        }
    }

    #[test]
    fn statements_never_panic_and_round_trip(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..200), any_json().prop_map(|v| serde_json::to_vec(&v).unwrap())],
        names in prop::collection::vec((".{0,10}", hex64()), 0..4),
        predicate_type in ".{0,20}",
        predicate in any_json(),
    ) {
        let _ = Statement::from_json(&bytes);
        let subject = names.into_iter()
            .map(|(name, hex)| Subject { name, digest: BTreeMap::from([("sha256".to_string(), hex)]) })
            .collect();
        let s = Statement::new(subject, predicate_type, predicate);
        prop_assert_eq!(Statement::from_json(&s.to_json()).expect("a written statement parses"), s);
    }
}

/// Manifest-shaped documents, often valid, with layers naming attacker paths.
fn manifest_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        4 => (
            descriptor_json(),
            prop::collection::vec(descriptor_json(), 0..4),
            prop_oneof![3 => Just(Value::Null), 1 => descriptor_json()],
            prop_oneof![3 => Just(Value::Null), 1 => any_json()],
        )
            .prop_map(|(config, layers, subject, schema)| {
                serde_json::to_vec(&json!({
                    "schemaVersion": if schema.is_null() { json!(2) } else { schema },
                    "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                    "config": config, "layers": layers.clone(), "manifests": layers,
                    "subject": subject,
                }))
                .unwrap()
            }),
    ]
}

#[test]
fn manifests_and_indexes_never_panic_and_round_trip() {
    let parsed = std::cell::Cell::new(0usize);
    let with_components = std::cell::Cell::new(0usize);
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&manifest_bytes(), |bytes| {
            if let Ok(m) = Manifest::parse(&bytes, "fuzz") {
                parsed.set(parsed.get() + 1);
                prop_assert_eq!(Manifest::parse(&m.to_bytes(), "again").expect("a written manifest parses"), m.clone());
                // Whatever the layers say, accepted paths are safe.
                if let Ok(list) = components(&m, "fuzz") {
                    with_components.set(with_components.get() + usize::from(!list.is_empty()));
                    for c in list {
                        prop_assert!(unsafe_path_reason(&c.path).is_none() && stays_inside(&c.path), "{:?}", c.path);
                    }
                }
            }
            if let Ok(i) = Index::parse(&bytes, "fuzz") {
                prop_assert_eq!(Index::parse(&i.to_bytes(), "again").expect("a written index parses"), i);
            }
            Ok(())
        })
        .unwrap();
    assert!(
        parsed.get() > 20 && with_components.get() > 0,
        "the generator is too far off: {parsed:?} {with_components:?}"
    );
}

/// One signed bundle and the policy that trusts its key.
fn signed_bundle() -> (Vec<u8>, TrustPolicy, Statement) {
    let key = SigningKey::generate(Algorithm::P256).unwrap();
    let signer = Signer::from_key(key);
    let policy = TrustPolicy::new().trust_key(signer.public_key().clone());
    let statement = Statement::new(
        vec![Subject { name: "m".into(), digest: BTreeMap::from([("sha256".to_string(), "ab".repeat(32))]) }],
        "https://example.dev/p/v1",
        json!({"k": "v"}),
    );
    (signer.sign_statement(&statement).unwrap(), policy, statement)
}

#[test]
fn bundles_never_panic_and_a_changed_bundle_never_verifies_as_something_else() {
    let (bundle, policy, statement) = signed_bundle();
    assert_eq!(verify_bundle(&bundle, &policy).unwrap().statement(), &statement);
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let cases = (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    );
    runner
        .run(&cases, |(edits, junk, use_junk)| {
            if use_junk {
                prop_assert!(verify_bundle(&junk, &policy).is_err());
                return Ok(());
            }
            let mut changed = bundle.clone();
            for (at, byte) in edits {
                let i = at.index(changed.len());
                changed[i] = byte;
            }
            if let Ok(verified) = verify_bundle(&changed, &policy) {
                // Only changes that leave the signed content alone (JSON whitespace, say) may pass.
                prop_assert_eq!(verified.statement(), &statement);
            }
            Ok(())
        })
        .unwrap();
    // Descriptors are part of the surface too: a digest string never panics the parser.
    let _ = serde_json::from_value::<Descriptor>(json!({"mediaType": "x", "digest": "sha256:zz", "size": 1}));
}
