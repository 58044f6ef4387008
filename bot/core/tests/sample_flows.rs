//! Every bundled sample flow in `flows/` validates, and there are enough of them.

use rf_core::flow::{FlowKind, parse_flow_yaml};
use std::collections::HashSet;
use std::path::Path;

#[test]
fn every_sample_flow_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../flows");
    let mut kinds = HashSet::new();
    let mut slugs = HashSet::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("flows/ exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let flow =
            parse_flow_yaml(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            slugs.insert(flow.meta.slug.clone()),
            "duplicate flow id {}",
            flow.meta.slug
        );
        assert!(
            !flow.meta.symptoms.is_empty(),
            "{} has no symptoms",
            path.display()
        );
        assert!(
            !flow.meta.category.is_empty(),
            "{} has no category",
            path.display()
        );
        kinds.insert(flow.meta.kind);
        count += 1;
    }
    assert!(count >= 10, "only {count} sample flows");
    assert_eq!(
        kinds.len(),
        3,
        "samples must cover every flow kind: {kinds:?}"
    );
    assert!(kinds.contains(&FlowKind::Maintenance));
}
