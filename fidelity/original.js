// k6 script of `asgibench fidelity`: the suite's original flow (locustfiles/workload.py OriginalFlowUser),
// step by step, with the same checks, so k6's iterations/s can be set beside Locust's on the same server.
// One iteration = 7 HTTP exchanges (k6 follows redirects itself and counts every hop in http_reqs):
//   1. GET  /admin/login/                      200, a csrftoken cookie
//   2. POST /admin/login/?next=/admin/          302 -> GET /admin/: 200, the logged-in admin index
//   3. GET  /admin/login/ (logged in)          302 -> GET /admin/: 200, not the login form
//   4. GET  {API_PREFIX}clowncollege/           200, a DRF page: count, next, results
//   5. GET  {API_PREFIX}troupe/                 same
// Each iteration starts with an empty cookie jar (Locust clears its jar per iteration: every iteration
// really logs in); connections are kept alive across iterations, as Locust's are.
// Environment (fidelity.k6_original_env): BASE_URL, API_PREFIX, ADMIN_USERNAME, ADMIN_PASSWORD, VUS,
// DURATION (e.g. 15s), SUMMARY_FILE (handleSummary's JSON, parsed by fidelity.parse_k6_summary).
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE_URL;
const PREFIX = __ENV.API_PREFIX || '/api/';
const LOGIN = BASE + '/admin/login/';

// gracefulStop 0s: an iteration still running at the end is interrupted and not counted, as Locust counts
// only the iterations completed in its measured window.
export const options = {
  scenarios: {
    flow: { executor: 'constant-vus', vus: Number(__ENV.VUS || 10), duration: __ENV.DURATION || '15s', gracefulStop: '0s' },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)', 'p(99.9)'],
};

function page(r) {
  if (r.status !== 200) return false;
  try {
    const d = r.json();
    return d.count !== null && d.count !== undefined && !!d.next && Array.isArray(d.results) && d.results.length > 0;
  } catch (e) {
    return false;
  }
}

function cookie(jar, name) {
  const c = jar.cookiesForURL(LOGIN)[name];
  return c && c.length ? c[0] : '';
}

export default function () {
  const jar = new http.CookieJar();
  let r = http.get(LOGIN, { jar: jar, tags: { name: 'GET /admin/login/' } });
  const token = cookie(jar, 'csrftoken');
  check(r, { 'login form: 200': (x) => x.status === 200, 'login form: csrftoken cookie': () => token !== '' });
  r = http.post(LOGIN + '?next=/admin/',
    { username: __ENV.ADMIN_USERNAME, password: __ENV.ADMIN_PASSWORD, next: '/admin/', csrfmiddlewaretoken: token },
    { jar: jar, headers: { 'X-CSRFToken': token, Referer: LOGIN }, tags: { name: 'POST /admin/login/' } });
  check(r, {
    'login: 200 on /admin/': (x) => x.status === 200 && x.url === BASE + '/admin/',
    'login: logged-in admin index': (x) => String(x.body).indexOf('id="user-tools"') >= 0,
    'login: sessionid cookie': () => cookie(jar, 'sessionid') !== '',
  });
  r = http.get(LOGIN, { jar: jar, tags: { name: 'GET /admin/login/ (logged in)' } });
  check(r, {
    'logged in: 200 on /admin/': (x) => x.status === 200 && x.url === BASE + '/admin/',
    'logged in: not the login form': (x) => String(x.body).indexOf('id="login-form"') < 0,
  });
  r = http.get(BASE + PREFIX + 'clowncollege/', { jar: jar });
  check(r, { 'clowncollege page': page });
  r = http.get(BASE + PREFIX + 'troupe/', { jar: jar });
  check(r, { 'troupe page': page });
}

export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY_FILE] = JSON.stringify(data);
  return out;
}
