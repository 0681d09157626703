"""Config loading: layering, strictness, and the promised error messages."""

from pathlib import Path

import pytest

from nemo_recipes.cli import main
from nemo_recipes.config import RunConfig, check_launch
from nemo_recipes.config.explain import explain, field_rows
from nemo_recipes.config.generation import GPU_MEMORY_BESIDE_TRAINER
from nemo_recipes.config.loader import ConfigError, load_config

RECIPES_DIR = Path(__file__).parents[1] / "nemo_recipes" / "recipes"
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(recipe: Path) -> None:
    cfg = load_config(RunConfig, recipe)
    assert cfg.run_dir


def test_layers_defaults_then_yaml_then_set(tmp_path: Path) -> None:
    p = write(tmp_path, "sft:\n  optimizer:\n    lr: 1.0e-4\n  seq_length: 128\n")
    cfg = load_config(RunConfig, p, ["sft.seq_length=64", "parallel.use_distributed_optimizer=true"])
    assert cfg.sft.optimizer.lr == 1e-4  # from YAML
    assert cfg.sft.seq_length == 64  # --set wins over YAML
    assert cfg.parallel.use_distributed_optimizer is True
    assert cfg.sft.optimizer.weight_decay == 0.1  # code default


def test_misspelled_key_names_file_line_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, "sft:\n  seq_length: 128\n  optimzer:\n    lr: 1.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, p)
    msg = str(e.value)
    assert f"{p}:3" in msg
    assert "sft.optimzer" in msg
    assert "did you mean 'optimizer'" in msg


def test_wrong_type_names_key_value_and_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, None, ["sft.micro_batch_size=two"])
    msg = str(e.value)
    assert "--set sft.micro_batch_size=two" in msg
    assert "sft.micro_batch_size = 'two'" in msg
    assert "integer" in msg


def test_literal_error_lists_allowed_values(tmp_path: Path) -> None:
    p = write(tmp_path, "model:\n  dtype: float16\n")
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, p)
    msg = str(e.value)
    assert f"{p}:2" in msg and "model.dtype = 'float16'" in msg
    assert "'float32'" in msg and "'bfloat16'" in msg


def test_unknown_set_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'sft\.stpes'"):
        load_config(RunConfig, None, ["sft.stpes=3"])


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(RunConfig, tmp_path / "nope.yaml")


def test_inconsistent_parallel_sizes() -> None:
    cfg = load_config(
        RunConfig, None, ["parallel.tensor_model_parallel_size=2", "parallel.pipeline_model_parallel_size=2"]
    )
    with pytest.raises(ConfigError, match=r"world size 6 is not divisible by tensor\(2\) x pipeline\(2\)"):
        check_launch(cfg, 6)
    cfg = load_config(RunConfig, None, ["parallel.data_parallel_size=2"])
    with pytest.raises(ConfigError, match="data_parallel_size = 2, but world size 4"):
        check_launch(cfg, 4)
    assert check_launch(load_config(RunConfig), 4) == 4


def test_batch_divisibility_and_model_limits() -> None:
    cfg = load_config(RunConfig, None, ["sft.global_batch_size=6", "sft.micro_batch_size=2"])
    with pytest.raises(
        ConfigError,
        match=r"global_batch_size 6 must be a multiple of sft\.micro_batch_size 2 x data-parallel size 2",
    ):
        check_launch(cfg, 2)
    cfg = load_config(
        RunConfig, None, ["grpo.prompts_per_step=2", "grpo.generation.num_generations_per_prompt=2"]
    )
    with pytest.raises(
        ConfigError, match=r"grpo responses per mini-batch .* 4 must be at least the data-parallel size 8"
    ):
        check_launch(cfg, 8, "grpo")
    assert check_launch(cfg, 4, "grpo") == 4  # packed rows: any split of 4 responses over 4 ranks
    with pytest.raises(ConfigError, match="max_tokens_per_micro_batch 100 must hold the longest sequence"):
        load_config(RunConfig, None, ["grpo.max_tokens_per_micro_batch=100"])
    with pytest.raises(ConfigError, match=r"grpo\.micro_batch_size.*grpo\.max_tokens_per_micro_batch"):
        load_config(RunConfig, None, ["grpo.micro_batch_size=2"])
    with pytest.raises(ConfigError, match="not a multiple of micro_batch_size"):
        load_config(RunConfig, None, ["sft.global_batch_size=5", "sft.micro_batch_size=2"])
    cfg = load_config(RunConfig, None, ["sft.seq_length=4096"])
    with pytest.raises(ConfigError, match="exceeds the model's max_position_embeddings 1024"):
        check_launch(cfg, 1)
    cfg = load_config(RunConfig, None, ["parallel.tensor_model_parallel_size=8"])
    with pytest.raises(ConfigError, match="divisible by tensor_model_parallel_size 8"):
        check_launch(cfg, 8)


def test_unknown_key_inside_a_dict_entry_and_a_tagged_union(tmp_path: Path) -> None:
    from nemo_recipes.tasks.table import TaskTableFile

    table = tmp_path / "t.yaml"
    table.write_text("tasks:\n  foo:\n    capability: x\n    reward: {kind: chrf, char_ordr: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_config(TaskTableFile, table)
    message = str(err.value)
    assert f"{table}:4: unknown key 'tasks.foo.reward.char_ordr' (did you mean 'char_order'?)" in message
    assert "allowed here: char_order, extract, kind, lowercase, word_order" in message


def test_stage_rules_kl_needs_a_reference_and_what_context_parallelism_is_not_combined_with() -> None:
    cfg = load_config(RunConfig, None, ["grpo.loss.kl_coef=0.01"])
    with pytest.raises(
        ConfigError, match=r"grpo.loss.kl_coef 0.01 needs a reference model: set model.init_from"
    ):
        check_launch(cfg, 1, "grpo")
    check_launch(cfg, 1, "sft")  # the SFT stage does not read grpo.*
    cfg = load_config(
        RunConfig, None, ["model.hf_config=tiny-qwen3-moe", "parallel.expert_model_parallel_size=2"]
    )
    assert check_launch(cfg, 2, "grpo") == 2 and cfg.routing_replay  # EP in GRPO; replay on for MoE
    moe_tp2 = ["model.hf_config=tiny-qwen3-moe", "parallel.expert_model_parallel_size=2"]
    moe_tp2 += ["parallel.tensor_model_parallel_size=2"]
    tp2 = load_config(RunConfig, None, moe_tp2)
    for stage in ("sft", "grpo"):  # megatron-core refuses MoE under TP without sequence parallelism
        with pytest.raises(
            ConfigError, match=r"needs parallel.sequence_parallel: true \(megatron-core[^)]*\)$"
        ):
            check_launch(tp2, 4, stage)
        sp = load_config(RunConfig, None, [*moe_tp2, "parallel.sequence_parallel=true"])
        assert check_launch(sp, 4, stage) == 2  # the local spec runs it (tests/parallel)
    cfg = load_config(RunConfig, None, ["parallel.context_parallel_size=2"])
    unsupported = {
        ("parallel.pipeline_model_parallel_size=2",): "with parallel.pipeline_model_parallel_size > 1",
        ("model.hf_config=tiny-qwen3-moe",): r"with a mixture-of-experts model \(tiny-qwen3-moe\)",
        ("parallel.tensor_model_parallel_size=2", "parallel.sequence_parallel=true"): (
            "with parallel.sequence_parallel"
        ),
    }
    for stage in ("sft", "grpo"):  # both shard packed rows per context-parallel rank
        assert check_launch(cfg, 2, stage) == 1
        for change, problem in unsupported.items():
            combined = load_config(RunConfig, None, ["parallel.context_parallel_size=2", *change])
            with pytest.raises(
                ConfigError, match=rf"parallel.context_parallel_size 2 {problem} is not supported"
            ):
                check_launch(combined, 4, stage)


def test_sequence_parallel_rules() -> None:
    sp = ["parallel.sequence_parallel=true"]
    with pytest.raises(ConfigError, match=r"sequence_parallel needs tensor_model_parallel_size > 1"):
        check_launch(load_config(RunConfig, None, sp), 1, "sft")
    sp.append("parallel.tensor_model_parallel_size=2")
    odd = load_config(RunConfig, None, [*sp, "sft.seq_length=127", "sft.micro_batch_size=1"])
    with pytest.raises(
        ConfigError, match=r"1 x 127 tokens must be divisible by tensor_model_parallel_size 2"
    ):
        check_launch(odd, 2, "sft")
    assert check_launch(odd, 2, "grpo") == 1  # GRPO pads its rows to a multiple of TP itself
    even = load_config(RunConfig, None, [*sp, "sft.seq_length=127", "sft.micro_batch_size=2"])
    assert check_launch(even, 2, "sft") == 1
    lora = load_config(RunConfig, None, [*sp, "model.lora.rank=8", "model.init_from=/x"])
    with pytest.raises(ConfigError, match=r"model\.lora with parallel\.sequence_parallel is not supported"):
        check_launch(lora, 2, "sft")


def test_paper_recipe_has_the_papers_numbers_and_fits_four_h100_nodes() -> None:
    cfg = load_config(RunConfig, Path(__file__).parents[1] / "nemo_recipes/recipes/redone_qwen3_4b.yaml")
    grpo = cfg.grpo
    assert (grpo.prompts_per_step, grpo.generation.num_generations_per_prompt) == (1024, 16)
    assert grpo.prompts_per_step // grpo.mini_batches_per_step == 256
    assert (grpo.loss.clip_eps_low, grpo.loss.clip_eps_high, grpo.loss.kl_coef) == (0.2, 0.28, 0.0)
    assert (grpo.generation.max_response_tokens, grpo.overlong.buffer_tokens) == (8192, 4096)
    assert (grpo.optimizer.lr, grpo.optimizer.lr_schedule, grpo.optimizer.warmup_steps) == (
        5e-6,
        "constant",
        10,
    )
    assert (grpo.train_steps, grpo.optimizer.weight_decay) == (500, 0.1)
    assert (cfg.sft.seq_length, cfg.sft.global_batch_size, cfg.sft.epochs) == (16384, 64, 2)
    assert (cfg.sft.optimizer.lr, cfg.sft.optimizer.warmup_fraction) == (5e-6, 0.1)
    assert (
        cfg.sft_data.generation.num_generations_per_prompt == 8 and 0.05 < cfg.sft_data.rehearsal_ratio < 0.07
    )
    assert cfg.model.hf_config_dict()["tie_word_embeddings"]  # the known conversion trap, exercised
    for stage in ("grpo", "sft"):
        assert check_launch(cfg, world_size=32, stage=stage) == 16


def qwen3_moe_parameters(hf: dict) -> tuple[int, int]:
    """(expert, other) parameter counts of a Qwen3-MoE config: experts are gate, up and down per
    expert and layer; the rest is attention (q, k, v, o, q/k norms), routers, norms and untied
    embeddings."""
    h, layers, head = hf["hidden_size"], hf["num_hidden_layers"], hf["head_dim"]
    experts = layers * hf["num_experts"] * 3 * h * hf["moe_intermediate_size"]
    q, kv = hf["num_attention_heads"] * head, hf["num_key_value_heads"] * head
    attention = h * q + 2 * h * kv + q * h + 2 * head
    per_layer = attention + h * hf["num_experts"] + 2 * h
    embeddings = hf["vocab_size"] * h * (1 if hf["tie_word_embeddings"] else 2)
    return experts, layers * per_layer + embeddings + h


def test_routing_replay_rules() -> None:
    """grpo.routing_replay: null follows the model (on for MoE), true on a dense model is an error, and
    replay refuses what would skip or re-run the routers unreplayed."""
    assert not load_config(RunConfig).routing_replay
    with pytest.raises(ConfigError, match=r"grpo.routing_replay: true needs a mixture-of-experts model"):
        check_launch(load_config(RunConfig, None, ["grpo.routing_replay=true"]), 1, "grpo")
    moe = ["model.hf_config=tiny-qwen3-moe"]
    assert not load_config(RunConfig, None, [*moe, "grpo.routing_replay=false"]).routing_replay
    for setting, message in (
        ("model.recompute=full", "recomputation re-runs the routers"),
        ("engine.enforce_eager=false", "a CUDA graph would skip"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_launch(load_config(RunConfig, None, [*moe, setting]), 1, "grpo")
        check_launch(load_config(RunConfig, None, [*moe, setting, "grpo.routing_replay=false"]), 1, "grpo")


def test_asynchronous_settings_need_the_separate_placement() -> None:
    """grpo.max_off_policy_steps, rollout_engines and rollout_port belong to placement: separate."""
    for setting in ("grpo.max_off_policy_steps=1", "grpo.rollout_engines=2", "grpo.rollout_port=29700"):
        with pytest.raises(
            ConfigError, match=rf"{setting.split('=')[0].removeprefix('grpo.')} need placement: separate"
        ):
            load_config(RunConfig, None, [setting])
        load_config(RunConfig, None, [setting, "grpo.placement=separate"])
    with pytest.raises(ConfigError, match="max_off_policy_steps"):
        load_config(RunConfig, None, ["grpo.placement=separate", "grpo.max_off_policy_steps=-1"])


def test_moe_paper_recipe_fits_eight_h200_nodes() -> None:
    """redone_qwen3_30b_a3b at 8 nodes x 8 H200 (141 GB): the layout passes the launch checks of GRPO
    and SFT, and the memory arithmetic of docs/grpo.md holds: the trainer's static memory (bf16
    weights, fp32 gradients, distributed Adam state) fits beside the engine's share of the GPU, which
    holds the whole bf16 model."""
    cfg = load_config(RunConfig, Path(__file__).parents[1] / "nemo_recipes/recipes/redone_qwen3_30b_a3b.yaml")
    hf, par = cfg.model.hf_config_dict(), cfg.parallel
    gpus, gpu_gb = 64, 141
    for stage in ("grpo", "sft"):
        assert check_launch(cfg, world_size=gpus, stage=stage) == 32
    assert cfg.routing_replay and (par.tensor_model_parallel_size, par.expert_model_parallel_size) == (2, 8)
    experts, other = qwen3_moe_parameters(hf)
    assert 30.0e9 < experts + other < 31.0e9  # Qwen3-30B-A3B: 30.5B
    tp, ep, dp = par.tensor_model_parallel_size, par.expert_model_parallel_size, 32
    expert_shards = ep * tp  # expert tensor parallelism is megatron-core's default, = TP
    expert_dp = gpus // expert_shards  # data-parallel replicas of each expert shard
    per_gpu_expert, per_gpu_other = experts / expert_shards, other / tp
    static_gb = (
        (per_gpu_expert + per_gpu_other) * (2 + 4)  # bf16 weights, fp32 gradients
        + per_gpu_expert * 12 / expert_dp  # fp32 master weights and Adam moments, sharded
        + per_gpu_other * 12 / dp
    ) / 1e9
    engine_gb = GPU_MEMORY_BESIDE_TRAINER * gpu_gb
    engine_weights_gb = (experts + other) * 2 / 1e9
    assert round(static_gb) == 21 and round(engine_weights_gb) == 61, (static_gb, engine_weights_gb)
    assert engine_weights_gb < 0.8 * engine_gb  # the rest is the engine's KV cache
    assert static_gb + engine_gb < gpu_gb
    assert engine_weights_gb + static_gb > 80  # an H100 cannot hold both


def test_a_key_of_an_earlier_version_names_the_new_one(tmp_path: Path) -> None:
    p = write(tmp_path, "grpo:\n  task_table: toy_rl\n  sampling:\n    temperature: 0.7\neval:\n  seed: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, p, ["sft_data.best_of_n=4"])
    msg = str(e.value)
    assert f"{p}:2: 'grpo.task_table' is now 'task_table'" in msg
    assert f"{p}:3: 'grpo.sampling' is now 'grpo.generation'" in msg
    assert f"{p}:6: 'eval.seed' is now 'seed'" in msg
    assert "--set sft_data.best_of_n=4: 'sft_data.best_of_n' is now " in msg
    assert "'sft_data.generation.num_generations_per_prompt'" in msg


def test_each_use_of_generation_has_its_own_defaults_under_one_name() -> None:
    cfg = load_config(RunConfig, None, ["eval.generation.max_response_tokens=48"])
    assert (cfg.eval.generation.num_generations_per_prompt, cfg.eval.generation.temperature) == (1, 0.0)
    assert cfg.eval.generation.max_response_tokens == 48
    assert (cfg.grpo.generation.num_generations_per_prompt, cfg.grpo.generation.temperature) == (8, 1.0)
    assert cfg.sft_data.generation.num_generations_per_prompt == 8  # the rehearsal's best-of-n
    with pytest.raises(ConfigError, match=r"needs eval\.generation\.temperature above 0"):
        load_config(RunConfig, None, ["eval.generation.num_generations_per_prompt=4"])
    sampled = load_config(
        RunConfig, None, ["eval.generation.num_generations_per_prompt=4", "eval.generation.temperature=1.0"]
    )
    assert sampled.eval.generation.num_generations_per_prompt == 4  # avg@4


def test_engine_defaults_follow_the_device_and_placement() -> None:
    engine = RunConfig().engine
    cpu = engine.resolved(on_gpu=False, beside_trainer=True)
    assert (cpu.kv_cache_memory_bytes, cpu.enforce_eager) == (64 << 20, True)
    gpu = engine.resolved(on_gpu=True, beside_trainer=True)
    assert (gpu.kv_cache_memory_bytes, gpu.enforce_eager, gpu.gpu_memory_utilization) == (None, False, 0.6)
    assert engine.resolved(on_gpu=True, beside_trainer=False).gpu_memory_utilization == 0.85
    stated = load_config(RunConfig, None, ["engine.enforce_eager=true", "engine.gpu_memory_utilization=0.5"])
    kept = stated.engine.resolved(on_gpu=True, beside_trainer=False)
    assert (kept.enforce_eager, kept.gpu_memory_utilization) == (True, 0.5)  # a stated value is kept


def test_grpo_engine_dtype_must_be_the_policys() -> None:
    cfg = load_config(RunConfig, None, ["engine.dtype=bfloat16"])
    with pytest.raises(ConfigError, match=r"engine\.dtype bfloat16 differs from model\.dtype float32"):
        check_launch(cfg, 1, "grpo")


def test_every_config_field_has_a_docstring_and_explain_shows_it() -> None:
    undocumented = [key for key, field, _, _ in field_rows(RunConfig(), RunConfig()) if not field.description]
    assert not undocumented
    cfg = load_config(RunConfig, RECIPES_DIR / "redone_qwen3_4b.yaml")
    text = explain(cfg, RunConfig())
    assert "eval.generation.temperature (float) = 0.0\n    0: greedy decoding." in text
    assert "grpo.generation.num_generations_per_prompt (int) = 8   recipe: 16\n" in text
    assert text.count("\n    ") >= len(list(field_rows(RunConfig(), RunConfig())))


def test_config_explain_on_the_command_line(tmp_path: Path) -> None:
    p = write(tmp_path, "seed: 7\n")
    assert main(["config", str(p), "--explain"]) == 0
