#!/usr/bin/env python3
"""Writes allsweep-dashboard.json: the Grafana dashboard over a coordinator's Prometheus
metrics (cluster health) and its results database (best configs, loss ranking, workers).

The SQL panels hold the example queries of migrations/queries/ verbatim, so the store tests
that run those files on SQLite and Postgres (and the dashboard's own SQL, read from this
JSON) test what Grafana runs. Run it again after changing a query or a panel."""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROM = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SQL = {"type": "grafana-postgresql-datasource", "uid": "${DS_ALLSWEEP_DB}"}


def query(name):
    text = (ROOT / "migrations" / "queries" / name).read_text()
    return "\n".join(l for l in text.splitlines() if not l.startswith("--")).strip().rstrip(";")


panels = []


def panel(kind, title, targets, x, y, w, h, unit=None, datasource=PROM):
    p = {
        "id": len(panels) + 1,
        "type": kind,
        "title": title,
        "datasource": datasource,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    panels.append(p)


def prom(expr, legend=""):
    return {"datasource": PROM, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + 0)}


def sql(name):
    return [{"datasource": SQL, "format": "table", "rawQuery": True, "editorMode": "code",
             "rawSql": query(name), "refId": "A"}]


panel("stat", "Workers alive", [prom('allsweep_workers{alive="true"}')], 0, 0, 4, 4)
panel("stat", "Queue depth (leasable trials)", [prom("allsweep_queue_depth")], 4, 0, 4, 4)
panel("stat", "Running leases", [prom("allsweep_leases_running")], 8, 0, 4, 4)
panel("stat", "Lease expiries (1 h)", [prom("sum(increase(allsweep_lease_expiries_total[1h]))")], 12, 0, 4, 4)
panel("stat", "Checkpoint bytes stored (1 h)", [prom("sum(increase(allsweep_checkpoint_bytes_total[1h]))")],
      16, 0, 4, 4, unit="bytes")
panel("stat", "Metric points stored (1 h)",
      [prom('sum(increase(allsweep_metric_points_total{result="stored"}[1h]))')], 20, 0, 4, 4)
panel("timeseries", "Trials by state", [prom("sum by (state) (allsweep_trials)", "{{state}}")], 0, 4, 12, 8)
panel("timeseries", "Attempts ended per minute, by outcome",
      [prom('sum by (outcome) (rate(allsweep_attempts_total{outcome!="running"}[5m])) * 60', "{{outcome}}")],
      12, 4, 12, 8)
panel("timeseries", "gRPC calls per second, by method and code",
      [prom("sum by (method, code) (rate(allsweep_grpc_requests_total[5m]))", "{{method}} {{code}}")],
      0, 12, 12, 8, unit="reqps")
panel("timeseries", "gRPC latency p95, by method",
      [prom("histogram_quantile(0.95, sum by (le, method) (rate(allsweep_grpc_request_duration_seconds_bucket[5m])))",
            "{{method}}")], 12, 12, 12, 8, unit="s")
panel("timeseries", "Database transaction latency p95, by operation",
      [prom("histogram_quantile(0.95, sum by (le, operation) "
            "(rate(allsweep_db_transaction_duration_seconds_bucket[5m])))", "{{operation}}")],
      0, 20, 12, 8, unit="s")
panel("timeseries", "Lease expiries per minute",
      [prom("sum by (next) (rate(allsweep_lease_expiries_total[5m])) * 60", "then {{next}}")], 12, 20, 12, 8)
panel("table", "Best config per sweep (mean test Jaccard over seeds)", sql("best_config_per_sweep.sql"),
      0, 28, 24, 8, datasource=SQL)
panel("table", "Losses ranked per data set", sql("loss_ranking_per_dataset.sql"), 0, 36, 12, 8, datasource=SQL)
panel("table", "Workers: attempts and busy time", sql("worker_utilisation.sql"), 12, 36, 12, 8, datasource=SQL)

dashboard = {
    "__inputs": [
        {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus",
         "pluginName": "Prometheus", "description": "The Prometheus that scrapes the coordinator's /metrics"},
        {"name": "DS_ALLSWEEP_DB", "label": "allsweep database", "type": "datasource",
         "pluginId": "grafana-postgresql-datasource", "pluginName": "PostgreSQL",
         "description": "The coordinator's Postgres database (read-only user recommended)"},
    ],
    "title": "allsweep",
    "uid": "allsweep",
    "tags": ["allsweep"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "refresh": "10s",
    "time": {"from": "now-6h", "to": "now"},
    "panels": panels,
    "templating": {"list": []},
    "annotations": {"list": []},
}
out = pathlib.Path(__file__).with_name("allsweep-dashboard.json")
out.write_text(json.dumps(dashboard, indent=2) + "\n")
print(f"wrote {out}")
