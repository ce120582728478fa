"""The bounded config reader and check-config's model checks (golden cases: tests/cases/config)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from edge_agent.cli.main import main
from edge_agent.config import load_config
from edge_agent.config_yaml import MAX_BYTES, MAX_DEPTH, MAX_VALUES
from edge_agent.errors import EX_CONFIG, ConfigError

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "edge_agent" / "sim" / "demo_pump.onnx"
SIGNALS = "[p.motor_current, p.bearing_temp, p.vibration_rms, p.discharge_pressure, p.flow]"


def _error(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "agent.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).replace(str(path), "agent.yaml")


def test_merge_keys_copy_what_the_mapping_does_not_write(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "x-base: &base {id: from-base, log_level: debug}\n"
        "x-more: &more {log_level: error, data_dir: /tmp/x}\n"
        "agent:\n  <<: [*base, *more]\n  id: own\n"
    )
    agent = load_config(path).agent
    assert (agent.id, agent.log_level, str(agent.data_dir)) == ("own", "debug", "/tmp/x")


def test_a_date_is_text_where_text_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("agent:\n  id: 2024-02-30\n")
    assert load_config(path).agent.id == "2024-02-30"


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    message = _error(tmp_path, "twin:\n  path: a.db\n  max_samples: 5\n  path: b.db\n")
    assert message.startswith(
        "agent.yaml:4: twin.path: the key 'path' is given twice, at lines 2 and 4"
    )


def test_duplicate_key_in_a_list_item(tmp_path: Path) -> None:
    text = "sinks:\n  - type: jsonl\n    name: a\n    path: x\n    name: b\n"
    assert "agent.yaml:5: sinks[0].name: the key 'name' is given twice, at lines 3 and 5" in _error(
        tmp_path, text
    )


def test_nesting_is_bounded_with_and_without_aliases(tmp_path: Path) -> None:
    deep = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    assert f"nested deeper than {MAX_DEPTH} levels" in _error(tmp_path, deep)
    # Each line is shallow; the aliases stack them up.
    half = MAX_DEPTH // 2
    chain = "a: &a " + "[" * half + "x" + "]" * half + "\n"
    chain += "b: &b " + "[" * half + "*a" + "]" * half + "\n"
    chain += "c: " + "[" * half + "*b" + "]" * half + "\n"
    assert "nested deeper than" in _error(tmp_path, chain)


def test_alias_expansion_is_bounded_before_copying(tmp_path: Path) -> None:
    text = "a: &a [" + ", ".join(["x"] * 100) + "]\n"
    text += "b: &b [" + ", ".join(["*a"] * 100) + "]\n"
    text += "c: [" + ", ".join(["*b"] * 100) + "]\n"  # a million values from 1 KB
    assert f"more than {MAX_VALUES:,} values" in _error(tmp_path, text)


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    message = _error(tmp_path, b"# padding\n" * (MAX_BYTES // 10 + 1))
    assert message.startswith("agent.yaml:1: the file is larger than")


def test_a_surrogate_escape_is_refused_with_its_line(tmp_path: Path) -> None:
    # libyaml refuses it while parsing; PyYAML's own parser lets it through to our check.
    assert _error(tmp_path, 'agent:\n  id: "\\ud800"\n').startswith("agent.yaml:2: ")


def test_multiple_documents_are_refused_with_a_line(tmp_path: Path) -> None:
    assert _error(tmp_path, "agent: {}\n---\ntwin: {}\n").startswith("agent.yaml:2: invalid YAML")


def _model_config(tmp_path: Path, model: str, extra: str = "") -> Path:
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"detect:\n  assets:\n    - name: pump\n      model: {model}\n      signals: {SIGNALS}\n"
        + extra
    )
    return config


def test_check_config_loads_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(MODEL, tmp_path / "pump.onnx")
    assert main(["check-config", "-c", str(_model_config(tmp_path, "pump.onnx"))]) == 0
    assert "1 model(s) loaded (numpy 1)" in capsys.readouterr().out


def test_check_config_says_which_engine_runs_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(MODEL, tmp_path / "pump.onnx")
    config = _model_config(tmp_path, "pump.onnx", "      engine: onnxruntime\n")
    assert main(["check-config", "-c", str(config)]) == 0
    assert "1 model(s) loaded (onnxruntime 1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("gone.onnx", "model file not found: "),
        ("/", "model file not found: /"),  # a path without a name: the fuzzer's find
        ("9" * 400 + ".onnx", "model file cannot be opened: "),  # longer than a name can be
    ],
    ids=["missing", "root", "name-too-long"],
)
def test_check_config_missing_model_exits_78_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, says: str
) -> None:
    config = _model_config(tmp_path, model)
    assert main(["check-config", "-c", str(config)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert f"{config}:4: detect.assets[0].model: {says}" in err


def test_check_config_names_the_asset_whose_model_fails_among_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(MODEL, tmp_path / "pump.onnx")
    config = _model_config(tmp_path, "pump.onnx")
    for name, model in (("twin", "pump.onnx"), ("gone", "gone.onnx")):  # gone.onnx: line 10
        config.write_text(
            config.read_text()
            + f"    - name: {name}\n      model: {model}\n      signals: {SIGNALS}\n"
        )
    assert main(["check-config", "-c", str(config)]) == EX_CONFIG
    assert f"{config}:10: detect.assets[2].model: model file not found: " in capsys.readouterr().err


def test_check_config_corrupt_model_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pump.onnx").write_bytes(MODEL.read_bytes()[:300])
    config = _model_config(tmp_path, "pump.onnx")
    assert main(["check-config", "-c", str(config)]) == EX_CONFIG
    assert f"{config}:4: detect.assets[0].model: pump.onnx: not a valid ONNX model" in (
        capsys.readouterr().err
    )


def test_check_config_signals_not_matching_the_card_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(MODEL, tmp_path / "pump.onnx")
    config = _model_config(tmp_path, "pump.onnx")
    config.write_text(config.read_text().replace("p.flow", "p.speed"))
    assert main(["check-config", "-c", str(config)]) == EX_CONFIG
    assert "detect.assets[0].model: asset pump: no signal for" in capsys.readouterr().err


def test_the_example_reads_the_same_as_pyyaml(tmp_path: Path) -> None:
    """Our reader changes nothing in a well-formed file (keys are text, dates strings)."""
    from edge_agent.config_yaml import load_yaml

    text = (ROOT / "config.example.yaml").read_text()
    ours, _ = load_yaml(text, Path("x"))
    assert ours == yaml.safe_load(text)
