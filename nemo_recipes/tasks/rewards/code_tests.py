"""code_tests: 1.0 if the extracted program passes the record's tests in the sandbox, else 0.0.

The program is the last fenced code block of the response (``extract.rule: code_block``, the default;
``full`` takes the whole response). The script run is ``program + "\\n\\n" + reference.tests`` (plain
``assert`` statements, or any code that exits non-zero on failure) under
:mod:`nemo_recipes.tasks.sandbox` limits; it passes if it exits 0 within them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from nemo_recipes.config.loader import StrictModel
from nemo_recipes.records.task import TaskRecord
from nemo_recipes.tasks.result import RewardResult, zero
from nemo_recipes.tasks.sandbox import SandboxConfig, run_python
from nemo_recipes.tasks.text import ExtractConfig, extract_answer

_STDERR_TAIL_CHARS = 500


class CodeTestsParams(StrictModel):
    kind: Literal["code_tests"] = "code_tests"
    extract: ExtractConfig = ExtractConfig(rule="code_block")
    sandbox: SandboxConfig = SandboxConfig()


class CodeReference(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tests: StrictStr


def score(response: str, record: TaskRecord, params: CodeTestsParams) -> RewardResult:
    tests = CodeReference.model_validate(record.reference or {}).tests
    program = extract_answer(response, params.extract)
    if program is None or not program.strip():
        return zero("no code extracted", rule=params.extract.rule)
    result = run_python(program + "\n\n" + tests + "\n", params.sandbox)
    details = {
        "returncode": result.returncode,
        "timed_out": result.timed_out,
        "network_isolated": result.network_isolated,
        "stderr_tail": result.stderr[-_STDERR_TAIL_CHARS:],
    }
    return RewardResult(1.0 if result.passed else 0.0, details)


def check_record(record: TaskRecord, params: CodeTestsParams) -> list[tuple[str, str]]:
    try:
        CodeReference.model_validate(record.reference or {})
    except ValidationError as exc:
        return [("reference.tests", exc.errors()[0]["msg"] + " (test code the program must pass)")]
    return []
