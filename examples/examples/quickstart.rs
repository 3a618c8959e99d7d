//! Embed SignalCraft in ~50 lines: an engine on the in-memory store, one route, a
//! channel that prints, alerts in the normalized JSON form, and a manual clock.
//!
//! Run: `cargo run -p signalcraft-examples --example quickstart`

use std::sync::Arc;
use std::time::Duration;

use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::clock::ManualClock;
use signalcraft_core::engine::{ChannelNotifier, Engine, EngineConfig};
use signalcraft_core::incident::{Actor, IncidentFilter};
use signalcraft_core::model::Event;

/// A channel that prints every notification.
struct Print;

#[async_trait::async_trait]
impl Channel for Print {
    fn kind(&self) -> &str {
        "print"
    }
    fn name(&self) -> &str {
        "print"
    }
    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let names: Vec<_> = n.alerts.iter().map(|a| a.summary.as_str()).collect();
        println!(
            "-> {} [{:?}] {:?} to {}",
            n.receiver, n.status, names, n.target.address
        );
        Ok(Delivered::default())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config: EngineConfig = serde_json::from_value(serde_json::json!({
        "route": { "receiver": "ops", "group_by": ["alertname"], "group_wait": "30s",
                   "notify": [{ "channel": "print", "target": "#ops" }] }
    }))?;
    let clock = ManualClock::new("2026-03-02T10:00:00Z".parse()?);
    let engine = Engine::builder(config)
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(
            ChannelNotifier::new().with("print", Arc::new(Print)),
        ))
        .build()?;

    let alert = |instance: &str, status: &str| -> Result<Event, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "kind": "alert", "status": status, "severity": "critical",
            "source": { "provider": "alertmanager", "integration": "prom" },
            "summary": format!("{instance} is down"),
            "labels": { "alertname": "InstanceDown", "instance": instance }
        }))
    };
    engine
        .ingest(vec![alert("db-1", "firing")?, alert("db-2", "firing")?])
        .await?;
    clock.advance(Duration::from_secs(30)); // group_wait
    engine.run_due_jobs().await?;

    let incident = engine
        .list_incidents(&IncidentFilter::default())
        .items
        .remove(0);
    engine.acknowledge(&incident.id, Actor::user("ann")).await?;
    engine
        .ingest(vec![alert("db-1", "resolved")?, alert("db-2", "resolved")?])
        .await?;
    engine.run_due_jobs().await?; // resolve_wait is 0: the resolve goes out now

    let incident = engine.get_incident(&incident.id)?;
    println!(
        "\nincident #{} {:?}: {}",
        incident.number, incident.state, incident.title
    );
    for e in engine.timeline(&incident.id).await? {
        println!(
            "  {} {:<12} by {}",
            e.at,
            e.kind.type_name(),
            e.actor.label()
        );
    }
    Ok(())
}
