//! JSON Schema (2020-12) of the canonical model, exported for partners
//! (`backhaul schema`) and embedded in the OpenAPI document.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::command::Command;
use crate::event::Event;
use crate::model::{MODEL_VERSION, ReturnRequest};
use crate::view::{ReturnListItem, ReturnSummary};

/// One schema document with the request, command, event and summary types
/// under `$defs`.
pub fn canonical_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let mut roots = Map::new();
    roots.insert(
        "ReturnRequest".into(),
        generator.subschema_for::<ReturnRequest>().to_value(),
    );
    roots.insert(
        "Command".into(),
        generator.subschema_for::<Command>().to_value(),
    );
    roots.insert(
        "Event".into(),
        generator.subschema_for::<Event>().to_value(),
    );
    roots.insert(
        "ReturnSummary".into(),
        generator.subschema_for::<ReturnSummary>().to_value(),
    );
    roots.insert(
        "ReturnListItem".into(),
        generator.subschema_for::<ReturnListItem>().to_value(),
    );
    let defs: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://backhaul.dev/schema/canonical/{MODEL_VERSION}"),
        "title": "Backhaul canonical returns model",
        "version": MODEL_VERSION,
        "properties": roots,
        "$defs": defs,
    })
}
