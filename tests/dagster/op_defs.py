"""Op jobs for the IO manager parity tests (module level: re-execution reconstructs them)."""

# No `from __future__ import annotations`: Dagster resolves `config: AConfig` at decoration.

from dagster import Config, DynamicOut, DynamicOutput, EnvVar, job, op

from pivot_dagster import PivotIOManager


class AConfig(Config):
    n: int = 1


@op
def op_a(config: AConfig) -> int:
    return config.n


@op
def op_b(x: int) -> list:
    return [x]


@job(resource_defs={"io_manager": PivotIOManager(project_dir=EnvVar("PIVOT_TEST_PROJECT"))})
def two_ops():
    op_b(op_a())


@op(out=DynamicOut())
def emit():
    for i in (1, 2, 3):
        yield DynamicOutput(i, mapping_key=str(i))


@op
def square(x: int) -> int:
    return x * x


@op
def gather(xs: list) -> list:
    return sorted(xs)


def dynamic_job(io: PivotIOManager):
    @job(resource_defs={"io_manager": io})
    def dynamic():
        gather(emit().map(square).collect())

    return dynamic
