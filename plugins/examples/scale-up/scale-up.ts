// scale-up: adds replicas to a service through the deploy API, with a cooldown.
//
// Params: endpoint (base URL, must be in allowed_hosts), service,
//         step (default 1), max_replicas (default 10), cooldown_ms (default 0).
// Effect: GET {endpoint}/v1/services/{service} → {"replicas": n};
//         POST {endpoint}/v1/services/{service}/scale {"replicas": min(n+step, max)}.
// The time of the last scale-up is kept in the plugin's kv store; within the
// cooldown the plugin does nothing. Dry run: reports the plan, changes nothing.
export { alloc, dealloc, signalcraft_abi_version } from "../../sdk/assemblyscript/assembly/signalcraft";
import {
  Input, Output, output, http, jsonFind, kvGet, kvSet, nowMs, log, quote,
} from "../../sdk/assemblyscript/assembly/signalcraft";

export function remediate(ptr: usize, len: u32): u64 {
  const input = Input.read(ptr, len);
  const endpoint = input.param("endpoint");
  const service = input.param("service");
  const step = input.intParam("step", 1);
  const max = input.intParam("max_replicas", 10);
  const cooldown = input.intParam("cooldown_ms", 0);
  const base = endpoint + "/v1/services/" + service;

  const now = nowMs();
  const last = kvGet("last_scale_ms:" + service);
  if (last != null && cooldown > 0 && now - I64.parseInt(last) < cooldown) {
    return output(new Output("noop", "cooldown: scaled " + service + " recently"));
  }

  const cur = http("GET", base, "");
  if (!cur.ok || cur.status != 200) {
    const o = new Output("failure", "could not read the current replica count");
    o.details = '{"http_status":' + (cur.ok ? cur.status.toString() : cur.error.toString()) + "}";
    return output(o);
  }
  const replicasText = jsonFind(cur.body, "replicas");
  if (replicasText == null) {
    return output(new Output("failure", "deploy API answer has no replicas field"));
  }
  const from = I64.parseInt(replicasText);
  let to = from + step;
  if (to > max) to = max;
  const plan = '{"from":' + from.toString() + ',"to":' + to.toString() + "}";
  if (to <= from) {
    const o = new Output("noop", service + " is already at " + from.toString() + " replicas (max " + max.toString() + ")");
    o.details = plan;
    return output(o);
  }
  if (input.dryRun) {
    const o = new Output("noop", "dry run: would scale " + service + " from " + from.toString() + " to " + to.toString());
    o.details = plan;
    return output(o);
  }
  log(1, "scaling " + service + " to " + to.toString());
  const body = '{"replicas":' + to.toString() + ',"incident_id":' + quote(input.incidentId) + "}";
  const r = http("POST", base + "/scale", body);
  if (!r.ok || r.status < 200 || r.status >= 300) {
    const o = new Output("failure", "deploy API refused the scale-up");
    o.details = '{"http_status":' + (r.ok ? r.status.toString() : r.error.toString()) + "}";
    return output(o);
  }
  kvSet("last_scale_ms:" + service, now.toString());
  const o = new Output("success", "scaled " + service + " from " + from.toString() + " to " + to.toString());
  o.details = plan;
  o.note("scale-up: " + service + " " + from.toString() + " → " + to.toString() + " replicas");
  return output(o);
}
