// k6 script of `asgibench fidelity --capacity-run DIR`: one constant-arrival-rate step (k6's open model:
// arrivals scheduled independently of responses; an arrival with no free VU is a dropped_iteration).
// Each arrival is one GET of the API-only flow's endpoints, in turn (the capacity ladder's request-level
// SLO is judged on the same requests). fidelity.capacity_search runs one k6 process per offered rate.
// Environment (fidelity.k6_capacity_env): BASE_URL, PATHS (comma-separated), RATE_PER_MIN (req/s x 60), DURATION,
// PRE_VUS, MAX_VUS, TIMEOUT (e.g. 10s), SUMMARY_FILE (handleSummary's JSON).
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';

const PATHS = (__ENV.PATHS || '/').split(',');

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)', 'p(99.9)'],
  scenarios: {
    step: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE_PER_MIN), // arrivals per minute, evenly spaced: fractional req/s rates
      timeUnit: '1m',
      duration: __ENV.DURATION || '10s',
      preAllocatedVUs: Number(__ENV.PRE_VUS || 20),
      maxVUs: Number(__ENV.MAX_VUS || 200),
      gracefulStop: '5s',
    },
  },
};

export default function () {
  const path = PATHS[exec.scenario.iterationInTest % PATHS.length];
  const r = http.get(__ENV.BASE_URL + path, { timeout: __ENV.TIMEOUT || '10s' });
  check(r, { '200': (x) => x.status === 200 });
}

export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY_FILE] = JSON.stringify(data);
  return out;
}
