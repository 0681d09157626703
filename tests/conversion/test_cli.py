"""`redone convert` end to end: HF -> checkpoint (TP=2) -> HF, verify, Qwen3-MoE both ways, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conversion.hf_io import INDEX_FILE, read_hf_tensors
from tests.conftest import run_cli

SOURCE = "tiny-qwen3-bfloat16"  # tied embeddings and bf16, as Qwen3-4B ships
MOE_SOURCE = "tiny-qwen3-moe-bfloat16"  # bf16, as Qwen3-30B-A3B ships


@pytest.fixture(scope="module")
def ckpt(hf_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "mcore"
    run_cli(["convert", "hf-to-mcore", str(hf_root / SOURCE), str(out), "--tp", "2"])
    return out


def test_checkpoint_keeps_the_hf_source_files(ckpt: Path) -> None:
    assert (ckpt / "weights_info.json").is_file()
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in (ckpt / "hf_source").iterdir()
    }
    assert not ckpt.with_name(ckpt.name + ".partial").exists()


def test_export_round_trip_is_bit_exact_and_servable(ckpt: Path, hf_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    run_cli(["convert", "mcore-to-hf", str(ckpt), str(out), "--dtype", "bfloat16", "--max-shard-mb", "1"])
    source, exported = dict(read_hf_tensors(hf_root / SOURCE)), dict(read_hf_tensors(out))
    assert set(exported) == set(source) and "lm_head.weight" not in exported
    assert all(exported[n].dtype == torch.bfloat16 and torch.equal(exported[n], source[n]) for n in source)
    index = json.loads((out / INDEX_FILE).read_text())
    assert len(set(index["weight_map"].values())) > 1  # sharded at 1 MB
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert (out / "generation_config.json").is_file()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    chat = [{"role": "user", "content": "hi"}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"]
    generated = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == len(ids) + 4


def test_moe_round_trip_is_bit_exact_and_loads_in_transformers(hf_root: Path, tmp_path: Path) -> None:
    ckpt, out = tmp_path / "mcore", tmp_path / "hf"
    run_cli(["convert", "hf-to-mcore", str(hf_root / MOE_SOURCE), str(ckpt)])
    run_cli(["convert", "mcore-to-hf", str(ckpt), str(out), "--dtype", "bfloat16"])
    source, exported = dict(read_hf_tensors(hf_root / MOE_SOURCE)), dict(read_hf_tensors(out))
    assert set(exported) == set(source) and "model.layers.3.mlp.experts.3.down_proj.weight" in exported
    assert all(torch.equal(exported[n], source[n]) for n in source)

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "qwen3_moe" and model.config.num_experts == 4
    generated = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2, do_sample=False)
    assert generated.shape == (1, 5)


def test_verify_passes_on_a_faithful_conversion(ckpt: Path, hf_root: Path) -> None:
    proc = run_cli(["convert", "verify", str(hf_root / SOURCE), str(ckpt)])
    assert "PASS: max_abs_diff=" in proc.stdout


def _fails(args: list[str], *needles: str) -> None:
    proc = run_cli(["convert", *args], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    for needle in needles:
        assert needle in proc.stderr, proc.stderr[-3000:]


def test_directory_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _fails(["hf-to-mcore", str(tmp_path / "empty"), str(tmp_path / "out")], "empty: no config.json")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_unsupported_architecture(hf_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "moe"
    shutil.copytree(hf_root / "tiny-qwen3-float32", src)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "model_type": "qwen2_moe"}))
    out = str(tmp_path / "out")
    _fails(["hf-to-mcore", str(src), out], "moe/config.json", "'qwen2_moe'", "not supported")


def test_moe_with_dense_layers_is_refused(hf_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "mixed"
    shutil.copytree(hf_root / MOE_SOURCE, src)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "mlp_only_layers": [0]}))
    out = tmp_path / "out"
    _fails(["hf-to-mcore", str(src), str(out)], "mixed/config.json", "dense layers inside an MoE model")
    assert not out.exists()


def test_weights_that_do_not_match_the_config(hf_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "wide"
    shutil.copytree(hf_root / "tiny-qwen3-float32", src)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "intermediate_size": 512}))
    _fails(
        ["hf-to-mcore", str(src), str(tmp_path / "out")],
        "model.safetensors: model.layers.0.mlp.gate_proj.weight has shape (384, 128), "
        "config.json implies (512, 128)",
    )
    assert not (tmp_path / "out").exists()


def test_checkpoint_that_does_not_match_the_export_config(ckpt: Path, hf_root: Path, tmp_path: Path) -> None:
    config_dir = tmp_path / "wide"
    config_dir.mkdir()
    config = json.loads((hf_root / SOURCE / "config.json").read_text())
    (config_dir / "config.json").write_text(json.dumps({**config, "intermediate_size": 512}))
    _fails(
        ["mcore-to-hf", str(ckpt), str(tmp_path / "out"), "--hf-config", str(config_dir)],
        f"{ckpt}: does not match the model config",
        "decoder.layers.mlp.linear_fc2.weight has shape (4, 128, 384), the config implies (4, 128, 512)",
    )
    assert not (tmp_path / "out").exists()


def test_a_failure_after_writing_weights_leaves_only_the_partial_directory(
    ckpt: Path, hf_root: Path, tmp_path: Path
) -> None:
    tokenizer = tmp_path / "no_template"
    tokenizer.mkdir()
    shutil.copyfile(hf_root / SOURCE / "tokenizer.json", tokenizer / "tokenizer.json")
    config = json.loads((hf_root / SOURCE / "tokenizer_config.json").read_text())
    config.pop("chat_template")
    (tokenizer / "tokenizer_config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    _fails(["mcore-to-hf", str(ckpt), str(out), "--tokenizer", str(tokenizer)], "has no chat template")
    assert not out.exists()
    assert any(out.with_name("out.partial").glob("*.safetensors"))  # weights were written, never published


def test_an_init_model_checkpoint_exports_without_flags(init_ckpt: Path, tmp_path: Path) -> None:
    """`redone init-model` records the model's HF config and tokenizer: later commands need no flags."""
    assert {"config.json", "tokenizer.json"} <= {p.name for p in (init_ckpt / "hf_source").iterdir()}
    out = tmp_path / "hf"
    run_cli(["convert", "mcore-to-hf", str(init_ckpt), str(out)])
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen3"
    assert (out / "tokenizer.json").is_file()


def test_a_bare_checkpoint_names_flags_that_exist(init_ckpt: Path, tmp_path: Path) -> None:
    """Without hf_source/ or a run config, the error names the real flag of each command that can help."""
    bare = tmp_path / "bare"
    shutil.copytree(init_ckpt, bare, ignore=shutil.ignore_patterns("hf_source"))
    proc = run_cli(["convert", "mcore-to-hf", str(bare), str(tmp_path / "out")], check=False)
    assert proc.returncode != 0
    assert "`redone convert ... --hf-config DIR`" in proc.stderr
    assert "`redone eval ... --set model.hf_config=DIR`" in proc.stderr
    convert = run_cli(["convert", "mcore-to-hf", "--help"])
    assert "--hf-config" in convert.stdout
    evaluation = run_cli(["eval", "x", "--set", "model.hf_config=nope", "--no-progress"], check=False)
    assert "unknown key" not in evaluation.stderr  # model.hf_config is a key `redone eval` accepts
