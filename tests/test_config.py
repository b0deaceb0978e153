import copy
import os
import re
from pathlib import Path

import pytest
import yaml

from ganad.config.compose import compose
from ganad.config.params import load_params, parse_params
from ganad.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_params_yaml_is_the_composed_default_profile(tmp_path):
    """`dvc repro` reads params.yaml; `dvc exp run` composes conf/: the two must agree."""
    out = tmp_path / "params.yaml"
    compose(out, [], ROOT)
    assert yaml.safe_load(out.read_text()) == yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("profile", sorted(f.stem for f in (ROOT / "conf" / "profile").glob("*.yaml")))
def test_profiles_compose_and_validate(tmp_path, profile):
    """Every profile in conf/profile/ composes into params that pass validation (a kept run's profile too)."""
    out = tmp_path / "params.yaml"
    compose(out, [f"profile={profile}", "model.latent_dim=64"], ROOT)
    params = load_params(out)
    assert params.latent_dim == 64


def test_paper_profile_holds_paper_settings(tmp_path):
    out = tmp_path / "params.yaml"
    compose(out, ["profile=paper"], ROOT)
    params = load_params(out)
    assert params.datasets == ["mnist", "cifar10"]
    assert all(d.source == "torchvision" for d in params.data.values())


def test_default_params_are_valid(raw):
    params = parse_params(raw)
    assert params.classes == "all" and params.classes_of("mnist", [str(d) for d in range(10)]) == list(range(10))
    assert "leave_one_class_out" in params.protocols and "one_class_normal" in params.protocols


@pytest.mark.parametrize("section", ["split", "report", "executor"])
def test_a_section_left_out_gets_the_default_profiles_values(raw, section):
    """A params file without a section gets the code's defaults, which must be the default profile's:
    otherwise a user's own params.yaml silently runs something else than `conf/` says."""
    full = parse_params(copy.deepcopy(raw))
    trimmed = copy.deepcopy(raw)
    assert section in trimmed, f"params.yaml has no {section} section"
    trimmed[section] = {}
    assert getattr(parse_params(trimmed), section) == getattr(full, section)


def test_latent_dim_auto_follows_the_paper_per_dataset_and_explicit_wins(raw):
    raw = copy.deepcopy(raw)
    raw["run"]["datasets"] = ["mnist", "cifar10"]
    params = parse_params(raw)
    main = params.main_method
    assert params.method_config(main, 1).latent_dim == 32
    assert params.method_config(main, 3).latent_dim == 128
    raw["model"]["latent_dim"] = 128
    assert parse_params(raw).method_config(main, 1).latent_dim == 128


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("run", "datasets"), ["svhn"], "run.datasets = 'svhn'"),
        (("run", "protocols"), ["half_out"], "run.protocols = 'half_out'"),
        (("run", "methods"), ["deep_magic"], "run.methods = 'deep_magic'"),
        (("model", "method"), "nope", "model.method = 'nope'"),
        (("model", "latent_dim"), -4, "model.latent_dim = -4"),
        (("model", "latent_dim"), 0, "model.latent_dim = 0"),
        (("run", "classes"), [3, -1], "run.classes = -1"),
        (("run", "classes"), [3, 3], "run.classes = [3, 3]"),
        (("executor", "jobs"), 0, "executor.jobs = 0"),
        (("executor", "jobs"), "many", "executor.jobs = 'many'"),
        (("executor", "score_jobs"), -2, "executor.score_jobs = -2"),
        (("executor", "kind"), "pbs", "executor.kind = 'pbs'"),
        (("executor", "threads"), 0, "executor.threads = 0"),
        (("executor", "slurm", "cpus_per_job"), 0, "executor.slurm.cpus_per_job = 0"),
        (("executor", "slurm", "cluster"), "lsf", "executor.slurm.cluster = 'lsf'"),
        (("executor", "slurm", "timeout_min"), -5, "executor.slurm.timeout_min = -5"),
        (("executor", "ray", "gpus_per_job"), -1, "executor.ray.gpus_per_job = -1"),
        (("executor", "ray", "address"), "", "executor.ray.address = ''"),
        (("data", "mnist", "source"), "ftp", "data.mnist.source = 'ftp'"),
        (("split", "train_fraction"), 1.5, "split.train_fraction = 1.5"),
        (("device",), "tpu", "device = 'tpu'"),
        (("seed",), -1, "seed = -1"),
        (("run", "seeds"), [], "run.seeds = []"),
        (("run", "seeds"), 3, "run.seeds = 3"),
        (("run", "seeds"), [0, -1], "run.seeds = -1"),
        (("run", "seeds"), [1, 1], "run.seeds = [1, 1]"),
        (("run", "audit_protocols"), ["peek"], "run.audit_protocols = 'peek'"),
        (("run", "audit_protocols"), "leave_one_class_out_leaky", "run.audit_protocols = 'leave_one_class_out_leaky'"),
    ],
)
def test_bad_values_name_key_value_and_allowed(raw, path, value, message):
    raw = copy.deepcopy(raw)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ParamsError, match=message.replace("[", r"\[")) as info:
        parse_params(raw)
    assert "allowed" in str(info.value) or "must be" in str(info.value)


def test_bad_method_section_values(raw):
    main = raw["model"]["method"]
    for key, value in [("lr", 0.0), ("epochs", -2), ("batch_size", 0)]:
        bad = copy.deepcopy(raw)
        bad["methods"][main][key] = value
        with pytest.raises(ParamsError, match=f"methods.{main}.{key} = "):
            parse_params(bad).method_config(main, 1)
    bad = copy.deepcopy(raw)
    bad["methods"][main]["not_a_key"] = 1
    with pytest.raises(ParamsError, match="unknown key.*not_a_key"):
        parse_params(bad).method_config(main, 1)


@pytest.mark.parametrize(
    "path, key",
    [
        ((), "sead"),
        (("run",), "method"),
        (("model",), "latent"),
        (("data", "mnist"), "npz"),
        (("split",), "leak"),
        (("report",), "figure"),
        (("methods",), "adea"),
    ],
)
def test_unknown_keys_are_refused_at_every_level(raw, path, key):
    """A misspelt key is never silently ignored: the message names it and what is allowed."""
    raw = copy.deepcopy(raw)
    node = raw
    for part in path:
        node = node[part]
    node[key] = 1
    with pytest.raises(ParamsError, match=rf"unknown (top-level )?key\(s\) \['{key}'\]; allowed"):
        parse_params(raw)


def test_classes_are_checked_against_the_dataset_once_its_classes_are_known(raw):
    raw = copy.deepcopy(raw)
    raw["run"]["classes"] = [1, 4]
    raw["report"]["figure_class"] = 1
    params = parse_params(raw)
    assert params.classes_of("mine", ["cat", "dog", "emu", "fox", "gnu"]) == [1, 4]
    with pytest.raises(
        ParamsError,
        match=r"run.classes = 4 is invalid: must be labels of mine's 3 classes 0..2 "
        r"\(cat, dog, emu\)",
    ):
        params.classes_of("mine", ["cat", "dog", "emu"])


@pytest.mark.parametrize(
    "name, section, message",
    [
        ("mnist", {"source": "folder", "root": "photos"}, "data.mnist collides with the built-in dataset 'mnist'"),
        ("cifar10", {"source": "torchvision", "torchvision": "SVHN"}, "data.cifar10 collides with the built-in"),
        ("photos", {"source": "folder"}, "data.photos.root is missing"),
        ("photos", {"source": "npz"}, "data.photos.npz_path is missing"),
        ("photos", {"source": "embedded"}, "data.photos.source = 'embedded' is invalid"),
        ("photos", {"source": "folder", "root": "x", "channels": 2}, "data.photos.channels = 2"),
        ("photos", {"source": "folder", "root": "x", "test_fraction": 1.0}, "data.photos.test_fraction = 1.0"),
        ("my photos", {"source": "folder", "root": "x"}, "data = 'my photos' is invalid"),
        ("photos", 1, "data.photos = 1 is invalid"),
    ],
)
def test_dataset_declarations_are_checked(raw, name, section, message):
    raw = copy.deepcopy(raw)
    raw["data"][name] = section
    raw["run"]["datasets"] = [name]
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params(raw)


def test_a_declared_dataset_runs_and_an_undeclared_one_is_refused(raw):
    raw = copy.deepcopy(raw)
    raw["data"]["photos"] = {"source": "folder", "root": "data/photos"}
    raw["run"]["datasets"] = ["mnist", "photos"]
    params = parse_params(raw)
    assert params.data["photos"].root == "data/photos" and params.data["photos"].channels == "auto"
    raw["run"]["datasets"] = ["kmnist"]
    with pytest.raises(ParamsError, match=r"run.datasets = 'kmnist' is invalid: must be a dataset declared under data"):
        parse_params(raw)


def test_the_main_model_must_be_one_of_run_methods(raw):
    raw = copy.deepcopy(raw)
    raw["run"]["methods"] = [m for m in raw["run"]["methods"] if m != raw["model"]["method"]]
    with pytest.raises(ParamsError, match=r"model.method = 'adae' is invalid: must be one of run.methods .*add it"):
        parse_params(raw)


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_dvc_config_never_phones_home():
    text = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in text and "check_update = false" in text
    assert os.path.exists(ROOT / "dvc.yaml")


@pytest.mark.parametrize(
    "method, key, value, allowed",
    [
        ("dcae", "width", 2.5, "an integer > 0"),
        ("vae", "epochs", 3.0, "an integer > 0"),
        ("adgan", "n_seed", True, "an integer > 0"),
        ("adae", "channels_last", 1, "true or false"),
        ("adgan", "pairs_per_batch", 0, "'auto' or an integer > 0"),
        ("adae", "lr", float("nan"), "a finite number > 0"),
        ("adae", "balance", "yes", r"one of \['lr', 'gaia', 'began', 'none'\]"),
        ("adae", "slope_units", "pixels", r"one of \['unit', 'image'\]"),
        ("kde", "pca_sizes", [4, 0], "a non-empty list of integers > 0"),
        ("kde", "max_train", 0, "null or an integer > 0"),
        ("ocsvm", "nu", 1.5, r"a finite number in \(0, 1\]"),
    ],
)
def test_every_method_checks_its_section_with_the_same_rules(raw, method, key, value, allowed):
    """Integer fields refuse fractions and booleans, numbers refuse NaN, in every method's section."""
    bad = copy.deepcopy(raw)
    bad["methods"].setdefault(method, {})[key] = value
    with pytest.raises(ParamsError, match=rf"methods\.{method}\.{key} = .* must be {allowed}"):
        parse_params(bad).method_config(method, 1)


def test_no_default_points_outside_the_repository():
    for path in [ROOT / "params.yaml", *(ROOT / "conf").rglob("*.yaml")]:
        assert "../" not in path.read_text(), f"{path} names a path outside the repository"


def test_brain_methods_must_be_run_methods_and_choose_what_runs_on_the_brain_data(raw):
    raw["brain"]["methods"] = ["vae", "adae"]
    params = parse_params(raw)
    assert params.methods_for("brain") == ["adae", "vae"]  # the main model first, as in every table
    assert params.methods_for("mnist") == params.all_methods()
    raw["run"]["methods"] = [m for m in raw["run"]["methods"] if m != "vae"]
    with pytest.raises(ParamsError, match=r"brain.methods = 'vae' is invalid.*add it there"):
        parse_params(raw)
    raw["brain"]["methods"] = []
    with pytest.raises(ParamsError, match="brain.methods"):
        parse_params(raw)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("modality", "flair", "brain.modality"),
        ("label_rule", "some", "brain.label_rule"),
        ("clip", -1.0, "brain.clip"),
        ("val_fraction", 1.5, "brain.val_fraction"),
        ("hcp_subjects", [], "hcp_subjects"),
        ("slice_offset", -2, "brain.slice_offset"),
        ("demo_healthy", 0, "brain.demo_healthy"),
        ("typo", 1, "unknown"),
        ("latent_dim", True, "brain.latent_dim = True"),
        ("hcp_subjects", [""], "brain.hcp_subjects"),
    ],
)
def test_bad_brain_params_are_refused_with_the_key(raw, key, value, message):
    """By the brain stages' own check, and by every stage's `load_params` (the section is part of Params)."""
    from ganad.studies.brain import brain_params

    section = {**raw["brain"], key: value}
    with pytest.raises(ParamsError, match=message):
        brain_params(section)
    with pytest.raises(ParamsError, match=message):
        parse_params({**raw, "brain": section})


def test_brain_params_resolve_auto_and_name_subjects_as_folders(raw):
    params = parse_params({**raw, "brain": {**raw["brain"], "latent_dim": "auto", "hcp_subjects": [100307, "b"]}})
    assert params.brain.latent_dim == 128 and params.brain.hcp_subjects == ["100307", "b"]
    with pytest.raises(ParamsError, match=r"brain.demo_lgg = 0 is invalid: .*no tumour case"):
        parse_params({**raw, "brain": {**raw["brain"], "demo_hgg": 0, "demo_lgg": 0}})
    assert parse_params({k: v for k, v in raw.items() if k != "brain"}).brain.methods == [
        "adae",
        "dcae",
        "vae",
        "cevae",
    ]


def test_the_leak_audit_needs_the_protocol_it_audits_and_split_leaky_is_gone(raw):
    bad = copy.deepcopy(raw)
    bad["run"].update(protocols=["one_class_normal"], audit_protocols=["leave_one_class_out_leaky"])
    with pytest.raises(ParamsError, match="add leave_one_class_out there"):
        parse_params(bad)
    bad["run"]["audit_protocols"] = []
    assert parse_params(bad).audit_protocols == []
    old = copy.deepcopy(raw)
    old["split"]["leaky"] = True
    with pytest.raises(ParamsError, match="split.leaky is no longer a setting.*leave_one_class_out_leaky"):
        parse_params(old)


def test_method_overrides_read_values_as_yaml_and_name_a_malformed_item():
    from ganad.config.params import ParamsError, method_overrides

    got = method_overrides(["adae.width=64", "adae.balance=began", "adae.channels_last=false", "vae.lr=1e-4"])
    assert got == {"adae": {"width": 64, "balance": "began", "channels_last": False}, "vae": {"lr": 1e-4}}
    assert method_overrides(["adae.min_steps_by_protocol={leave_one_class_out: 200}"]) == {
        "adae": {"min_steps_by_protocol": {"leave_one_class_out": 200}}
    }
    for bad in ("adae.width", "width=64", ".width=64", "adae.=3"):
        with pytest.raises(ParamsError, match="method.key=value"):
            method_overrides([bad])


def test_budget_scale_multiplies_every_network_methods_own_share_and_nothing_else(raw):
    raw = copy.deepcopy(raw)
    raw["methods"]["vae"]["budget_scale"] = 0.5
    full = parse_params(raw)
    raw["run"]["budget_scale"] = 0.01
    scaled = parse_params(raw)
    assert scaled.method_config("dcae", 1).budget_scale == 0.01
    assert scaled.method_config("vae", 1).budget_scale == pytest.approx(0.005)
    # everything else is the same settings, and a method without a training loop is untouched
    assert scaled.method_config("dcae", 1).model_dump(exclude={"budget_scale"}) == full.method_config(
        "dcae", 1
    ).model_dump(exclude={"budget_scale"})
    assert scaled.method_config("kde", 1) == full.method_config("kde", 1)
    raw["run"]["budget_scale"] = 0
    with pytest.raises(ParamsError, match="budget_scale"):
        parse_params(raw)
