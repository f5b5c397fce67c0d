// Cross-check for the lab's load generator: the official test's load shape only (ramping VUs
// from 1 to VUS over DURATION, each looping one POST /payments then sleep 1 s), without remote
// imports so that it runs offline. Compare k6's p(99) of
// http_req_duration{expected_response:true} with the lab's post_p99_ms on the same server:
//   k6 run -e TARGET=http://127.0.0.1:9999 -e VUS=550 -e DURATION=60s benches/lab/k6/ramp.js
import http from "k6/http";
import { sleep } from "k6";

const target = __ENV.TARGET ?? "http://127.0.0.1:9999";

export const options = {
  summaryTrendStats: ["p(50)", "p(90)", "p(99)", "max", "count"],
  scenarios: {
    payments: {
      executor: "ramping-vus",
      startVUs: 1,
      gracefulRampDown: "0s",
      stages: [{ target: Number(__ENV.VUS ?? 550), duration: __ENV.DURATION ?? "60s" }],
    },
  },
};

export default function () {
  const payload = JSON.stringify({ correlationId: crypto.randomUUID(), amount: 19.9 });
  http.post(`${target}/payments`, payload, {
    headers: { "Content-Type": "application/json" },
    timeout: "1500ms",
  });
  sleep(1);
}
