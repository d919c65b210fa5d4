"""`wordlstm serve` fuzzed through its own OpenAPI schema (schemathesis): every route and every
field, valid and invalid bodies. No answer is a 5xx, every answer (status, content type, body)
is one the schema documents, data the schema allows is never refused as malformed (422: the
schema and the validation agree), data it forbids is refused, and every request is answered
within a bound. The examples are bounded (hypothesis), so this runs in CI in seconds.

The application is called in-process (ASGI) over the tiny test models, with small limits so
that the valid requests that do generate stay quick."""

import collections
import os
import time

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install -e '.[test]')")
# hypothesis comes with schemathesis: imported only once the skip above has passed.
from hypothesis import HealthCheck, given, settings  # noqa: E402

TIME_LIMIT = 2.0  # seconds a request may generate (ServeConfig.time_limit)
BOUND = 30.0  # seconds any request may take here: the time limit and generous room
# Cases per route and generation mode; WORDLSTM_FUZZ_EXAMPLES=1000 for a longer hunt.
EXAMPLES = int(os.environ.get("WORDLSTM_FUZZ_EXAMPLES", "40"))
DERANDOMIZE = "WORDLSTM_FUZZ_EXAMPLES" not in os.environ  # CI: the same cases every run
HOST = "http://127.0.0.1:8000"  # a loopback Host header: the server refuses any other name


@pytest.fixture(scope="module")
def api(model_dir, poem_model):
    from wordlstm.serve import ServeConfig, create_app, load_models

    models = load_models([model_dir, poem_model / "m"])
    app = create_app(models, ServeConfig(max_length=40, max_samples=3, max_prompt=400,
                                         max_acrostic=6, max_top=10, time_limit=TIME_LIMIT,
                                         max_active=4, max_waiting=4, max_wait=BOUND / 2))
    config = schemathesis.Config.from_dict({
        "checks": {
            # 400 is how the server refuses what a schema cannot say (a prompt with no word
            # the model knows, an acrostic head outside its vocabulary), naming the field;
            # 503: the time limit. A 422 for data the schema allows would be a disagreement.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "503"]},
            # 503 is documented: busy, or stopped at the time limit (the first poem of a
            # model pays for its rhyme table); any other 5xx is a finding.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
        },
    })
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config,
                                            headers={"Host": "127.0.0.1:8000"})
    return schema


def operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_has_every_route(api):
    assert {(op.method.upper(), op.path) for op in operations(api)} == {
        ("GET", "/api/model"), ("GET", "/api/card"), ("GET", "/api/history"),
        ("POST", "/api/next"), ("POST", "/api/continue")}


def fuzz(op, mode: str, seen: collections.Counter) -> None:
    """EXAMPLES cases of `mode` for one operation, each checked by every schemathesis check."""
    from schemathesis import GenerationMode

    @given(case=op.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        started = time.monotonic()
        response = case.call_and_validate(base_url=HOST, timeout=BOUND)
        assert time.monotonic() - started < BOUND, f"{op.label}: too slow"
        seen[op.label, response.status_code] += 1

    run()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_route_and_field(api, mode):
    """Driven with hypothesis directly (schemathesis's pytest plugin does not run under this
    pytest): every operation, valid bodies (positive) and invalid ones (negative)."""
    seen = collections.Counter()
    for op in operations(api):
        if mode == "negative" and not op.body and not list(op.iter_parameters()):
            continue  # nothing to make invalid
        fuzz(op, mode, seen)
    print(mode, dict(seen))
    if mode == "positive":  # the fuzzer reached generation, not only the validation
        assert seen["POST /api/continue", 200] and seen["POST /api/next", 200]
