"""The tables' memory estimate (rows × dim × 4 B × 3 with Adam's slots) and the budget per strategy."""
import pytest

from trainer.table_memory import GB, check_table_memory, table_memory
from transforms.errors import UserError
from transforms.schema import FeatureConfig

FEATURES = [FeatureConfig(name="user", kind="categorical"), FeatureConfig(name="item", kind="categorical", embedding_dim=4),
            FeatureConfig(name="price", kind="numeric")]


def test_estimate_is_rows_dim_4_bytes_3_copies_per_group():
    tables = table_memory(FEATURES, {"user": 1000, "item": 10}, embedding_dim=8, groups=3)
    assert [(t.feature, t.bytes) for t in tables] == [("user", 1000 * 8 * 4 * 3 * 3), ("item", 10 * 4 * 4 * 3 * 3)]


def test_a_backbones_own_table_size_counts_instead_of_the_embedding_dim():
    """mf sizes p_u, q_i by model.mf.embedding_dim: the estimate must use that, not model.embedding_dim."""
    tables = table_memory(FEATURES, {"user": 1000, "item": 10}, embedding_dim=8, groups=2, dims={"user": 64, "item": 64})
    assert [(t.feature, t.dim, t.bytes) for t in tables] == [("user", 64, 1000 * 64 * 4 * 3 * 2),
                                                             ("item", 64, 10 * 64 * 4 * 3 * 2)]


def test_budget_is_one_task_or_the_sum_over_the_parameter_servers():
    tables = table_memory(FEATURES, {"user": 50_000_000, "item": 10}, embedding_dim=16)  # 9.6 GB with slots
    with pytest.raises(UserError, match=r"train.distribute.task_memory_gb: .*user \(50,000,000 rows"):
        check_table_memory(tables, "multi_worker_mirrored", task_memory_gb=4)
    with pytest.raises(UserError, match="2 parameter server"):
        check_table_memory(tables, "parameter_server", task_memory_gb=4, n_ps=2)
    assert check_table_memory(tables, "parameter_server", task_memory_gb=4, n_ps=3) > 8 * GB
