"""Search-space format, Architecture identity, validation messages, sampling, mutation, seeds."""
from __future__ import annotations

import itertools
import json
import random

import pytest

import mixers
from search_spaces import SPACE_NAMES, Architecture, SearchSpace, get_space
from search_spaces import space as space_module
from search_spaces.canonical import json_hash

SEED_NAMES = {"CAFormer-like", "CDFFormer-like", "DilateFormer-like", "LITv2-like", "all-DF", "all-DynaMixer"}


def small_space(**overrides) -> SearchSpace:
    """Four stages over the baseline mixers, which exist independently of the paper mixers."""
    description = {
        "name": "small",
        "description": "test space",
        "target_res": 64,
        "proxy_res": 32,
        "stages": [
            {"mixer": ["sepconv", "pooling"], "depth": [1, 2], "width": [16, 32]},
            {"mixer": ["sepconv", "pooling", "mhsa"], "depth": [1, 2], "width": [32, 48],
             "mixer_kwargs": {"mhsa": {"head_dim": 16}}},
            {"mixer": ["pooling", "mhsa"], "depth": [1], "width": [32, 64]},
            {"mixer": ["pooling", "mhsa"], "depth": [1], "width": [64]},
        ],
        "constraints": [{"type": "nondecreasing_width"}],
        "seeds": [{"name": "conv-then-attention", "mixers": ["sepconv", "sepconv", "mhsa", "mhsa"],
                   "depths": [1, 2, 1, 1], "dims": [16, 32, 64, 64]}],
    }
    description.update(overrides)
    return SearchSpace.from_dict(description)


def arch(mixers_, depths, dims, kwargs=None) -> Architecture:
    return Architecture(tuple(mixers_), tuple(depths), tuple(dims), tuple(kwargs or [{}] * len(mixers_)))


# ---- Architecture -----------------------------------------------------------------------------


def test_architecture_round_trips_and_is_identified_by_canonical_json():
    a = arch(["msda", "msda", "mhsa", "mhsa"], [2, 2, 4, 2], [64, 128, 320, 512], [{}, {}, {"head_dim": 32}, {}])
    d = a.to_dict()
    assert d == {"mixers": ["msda", "msda", "mhsa", "mhsa"], "depths": [2, 2, 4, 2], "dims": [64, 128, 320, 512],
                 "mixer_kwargs": [{}, {}, {"head_dim": 32}, {}]}
    assert json.loads(json.dumps(d)) == d  # plain JSON types
    assert Architecture.from_dict(d) == a
    assert a.to_json() == json.dumps(d, sort_keys=True, separators=(",", ":"))
    assert a.hash == json_hash(d) and len(a.hash) == 16
    assert a.label() == "msda-2x64 | msda-2x128 | mhsa-4x320 | mhsa-2x512"


def test_equal_architectures_collapse_in_sets_whatever_the_input_types():
    a = Architecture(["mhsa", "sepconv"], [1, 2], [32, 64])  # lists, default kwargs
    b = arch(("mhsa", "sepconv"), (1, 2), (32, 64), [{}, {}])
    c = arch(("mhsa", "sepconv"), (1, 2), (32, 64), [{"head_dim": 16}, {}])
    assert a == b and hash(a) == hash(b) and a.hash == b.hash
    assert a != c and a.hash != c.hash
    assert len({a, b, c}) == 2
    assert a.mixers == ("mhsa", "sepconv") and a.mixer_kwargs == ({}, {})


def test_to_dict_is_a_copy():
    a = arch(["mhsa"], [1], [32], [{"head_dim": 16}])
    a.to_dict()["mixer_kwargs"][0]["head_dim"] = 8
    assert a.mixer_kwargs[0] == {"head_dim": 16}


@pytest.mark.parametrize("bad, message", [
    ("not a dict", "expected a mapping"),
    ({"mixers": ["mhsa"], "depths": [1]}, "missing key(s) ['dims']"),
    ({"mixers": ["mhsa"], "depths": [1], "dims": [32], "width": 3}, "unknown key(s) ['width']"),
    ({"mixers": "mhsa", "depths": [1], "dims": [32]}, "mixers: expected a list of non-empty strings"),
    ({"mixers": ["mhsa"], "depths": [True], "dims": [32]}, "depths: expected a positive int, got True"),
    ({"mixers": ["mhsa"], "depths": [0], "dims": [32]}, "depths: expected a positive int, got 0"),
    ({"mixers": ["mhsa"], "depths": [1], "dims": [32.0]}, "dims: expected a positive int, got 32.0"),
    ({"mixers": ["mhsa", "mhsa"], "depths": [1], "dims": [32]}, "one entry per stage"),
    ({"mixers": [], "depths": [], "dims": []}, "at least one"),
    ({"mixers": ["mhsa"], "depths": [1], "dims": [32], "mixer_kwargs": {"head_dim": 1}},
     "mixer_kwargs must be a list of dicts"),
    ({"mixers": ["mhsa"], "depths": [1], "dims": [32], "mixer_kwargs": [{"f": float("nan")}]}, "not plain JSON"),
    ({"mixers": ["mhsa"], "depths": [1], "dims": [32], "mixer_kwargs": [{1: 2}]}, "string keys"),
])
def test_architecture_from_dict_rejects_malformed_input(bad, message):
    with pytest.raises(ValueError) as excinfo:
        Architecture.from_dict(bad)
    assert message in str(excinfo.value)


# ---- format ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_shipped_spaces_round_trip_through_describe(name):
    space = get_space(name)
    rebuilt = SearchSpace.from_dict(json.loads(json.dumps(space.describe())))
    assert rebuilt.describe() == space.describe()
    assert rebuilt.hash == space.hash
    assert len(space.stages) == 4 and space.size() == rebuilt.size()


def test_space_files_load_from_yaml_and_json(tmp_path):
    description = small_space().describe()
    json_file = tmp_path / "mine.json"
    json_file.write_text(json.dumps(description))
    yaml_file = tmp_path / "mine.yml"
    import yaml

    yaml_file.write_text(yaml.safe_dump(description))
    assert get_space(str(json_file)).describe() == description
    assert get_space(str(yaml_file)).describe() == description


def test_unknown_space_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown search space 'nope'; known: hybrid_metaformer, "
                                         r"hybrid_metaformer_tiny"):
        get_space("nope")


def test_bad_space_files_name_the_file_and_the_problem(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValueError, match=rf"search space file {missing}: cannot read it"):
        get_space(str(missing))
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages: [unclosed\n")
    with pytest.raises(ValueError, match=rf"search space file {broken}: not valid YAML"):
        get_space(str(broken))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**small_space().describe(), "stages": []}))
    with pytest.raises(ValueError, match=rf"search space file {wrong}: search space 'small': 'stages' must be"):
        get_space(str(wrong))


def _with_stage(stage_overrides: dict, index: int = 0) -> dict:
    description = small_space().describe()
    description["stages"][index].update(stage_overrides)
    return description


@pytest.mark.parametrize("description, message", [
    ({"name": ""}, "'name' must be a non-empty string"),
    ({**small_space().describe(), "stages": small_space().describe()["stages"][:3]}, "'stages' needs 4 entries"),
    ({**small_space().describe(), "stage": []}, "unknown key(s) ['stage']"),
    ({**small_space().describe(), "target_res": 0}, "target_res: expected a positive int"),
    (_with_stage({"mixer": ["sepconv", "nomixer"]}), "stage1.mixer: unknown mixer(s) ['nomixer']"),
    (_with_stage({"depth": [1, 1]}), "stage1.depth: expected a non-empty list of distinct choices"),
    (_with_stage({"width": []}), "stage1.width: expected a non-empty list of distinct choices"),
    (_with_stage({"width": [0]}), "stage1.width: expected a positive int"),
    (_with_stage({"mixer_kwargs": {"mhsa": {}}}), "kwargs for mixer(s) ['mhsa'] that are not choices"),
    (_with_stage({"repeat": 2}, index=1), "stage2: unknown key(s) ['repeat']"),
    ({**small_space().describe(), "constraints": [{"type": "max_flops"}]}, "constraints[0]: expected {type: ...}"),
    ({**small_space().describe(), "constraints": [{"type": "max_params_m"}]}, "max_params_m takes keys ['limit']"),
    ({**small_space().describe(), "constraints": [{"type": "max_params_m", "limit": -1}]},
     "limit must be a positive number"),
    ({**small_space().describe(), "seeds": [{"name": "x", "mixers": ["mhsa"], "depths": [1], "dims": [32]}]},
     "seeds[0] (x): mixers, depths and dims need 4 entries each"),
    ({**small_space().describe(), "seeds": small_space().describe()["seeds"] * 2}, "seed names must be unique"),
])
def test_malformed_space_descriptions_are_rejected_with_the_field_named(description, message):
    with pytest.raises(ValueError) as excinfo:
        SearchSpace.from_dict(description)
    assert message in str(excinfo.value)


# ---- choices ------------------------------------------------------------------------------


def test_choices_are_flat_labels_and_map_both_ways():
    space = small_space()
    choices = space.choices()
    assert list(choices) == [f"stage{i}.{kind}" for i in (1, 2, 3, 4) for kind in ("mixer", "depth", "width")]
    assert choices["stage2.mixer"] == ["sepconv", "pooling", "mhsa"]
    picked = {"stage1.mixer": "pooling", "stage1.depth": 2, "stage1.width": 16,
              "stage2.mixer": "mhsa", "stage2.depth": 1, "stage2.width": 48,
              "stage3.mixer": "mhsa", "stage3.depth": 1, "stage3.width": 64,
              "stage4.mixer": "pooling", "stage4.depth": 1, "stage4.width": 64}
    a = space.arch_from_choices(picked)
    assert a == arch(["pooling", "mhsa", "mhsa", "pooling"], [2, 1, 1, 1], [16, 48, 64, 64],
                     [{}, {"head_dim": 16}, {}, {}])
    assert space.choices_of(a) == picked
    numpy = pytest.importorskip("numpy")
    assert space.arch_from_choices({**picked, "stage1.depth": numpy.int64(2)}) == a  # tuners return numpy ints
    with pytest.raises(ValueError, match=r"missing \['stage3.width'\], unknown \['stage5.width'\]"):
        space.arch_from_choices({**{k: v for k, v in picked.items() if k != "stage3.width"}, "stage5.width": 64})


def test_size_counts_raw_combinations():
    assert small_space().size() == (2 * 2 * 2) * (3 * 2 * 2) * (2 * 1 * 2) * (2 * 1 * 1)
    tiny = get_space("hybrid_metaformer_tiny")
    assert tiny.size() == (7 * 2 * 2) * (7 * 2 * 2) * (6 * 2 * 2) * (6 * 2 * 1)


# ---- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("candidate, message", [
    (arch(["sepconv", "sepconv"], [1, 1], [16, 32]), "architecture has 2 stages, the space has 4"),
    (arch(["mhsa", "sepconv", "mhsa", "mhsa"], [1, 1, 1, 1], [16, 32, 64, 64]),
     "stage1.mixer='mhsa' is not a choice of the space (choices: ['sepconv', 'pooling'])"),
    (arch(["sepconv", "sepconv", "mhsa", "mhsa"], [1, 3, 1, 1], [16, 32, 64, 64]), "stage2.depth=3 is not a choice"),
    (arch(["sepconv", "mhsa", "mhsa", "mhsa"], [1, 1, 1, 1], [16, 32, 64, 64]),
     "stage2.mixer_kwargs={} differ from the space's kwargs for 'mhsa' at that stage: {'head_dim': 16}"),
    (arch(["sepconv", "sepconv", "mhsa", "mhsa"], [1, 1, 1, 1], [32, 48, 32, 64]),
     "constraint nondecreasing_width violated: stage3.width=32 is narrower than stage2.width=48"),
])
def test_validate_names_stage_choice_and_rule(candidate, message):
    space = small_space()
    with pytest.raises(ValueError) as excinfo:
        space.validate(candidate)
    assert message in str(excinfo.value)
    assert not space.is_valid(candidate)


def test_validate_builds_each_mixer_at_its_width():
    # sepconv's hidden width int(0.05 * dim) is 0 at width 16: that choice cannot be built.
    space = SearchSpace.from_dict(_with_stage({"mixer_kwargs": {"sepconv": {"expansion_ratio": 0.05}}}))
    seed_choices = small_space().choices_of(small_space().seeds()[0][1])
    bad = space.arch_from_choices({**seed_choices, "stage1.width": 16})
    with pytest.raises(ValueError, match=r"stage1.mixer='sepconv' cannot be built at stage1.width=16 on the 8x8 "
                                         r"token grid of a 32px input: ValueError: sepconv: expansion_ratio\*dim"):
        space.validate(bad)
    assert space.is_valid(space.arch_from_choices({**seed_choices, "stage1.width": 32}))


@pytest.fixture
def grid_limited_mhsa(monkeypatch):
    """mhsa that refuses 1x1 token grids, to see which resolutions are checked."""
    real = mixers.validate_mixer

    def validate(name, dim, input_size=None, **hparams):
        if name == "mhsa" and min(input_size) < 2:
            raise ValueError(f"mhsa: grid {input_size} too small")
        real(name, dim, input_size=input_size, **hparams)

    space_module._mixer_build_error.cache_clear()
    monkeypatch.setattr(mixers, "validate_mixer", validate)
    yield
    space_module._mixer_build_error.cache_clear()


def test_validate_checks_every_stage_at_every_resolution(grid_limited_mhsa):
    space = small_space()  # proxy 32px -> stage grids 8, 4, 2, 1; target 64px -> 16, 8, 4, 2
    conv_then_attention = arch(["sepconv", "sepconv", "mhsa", "mhsa"], [1, 2, 1, 1], [16, 32, 64, 64])
    with pytest.raises(ValueError, match=r"stage4.mixer='mhsa' cannot be built at stage4.width=64 on the 1x1 "
                                         r"token grid of a 32px input: ValueError: mhsa: grid \(1, 1\) too small"):
        space.validate(conv_then_attention)
    space.validate(conv_then_attention, img_sizes=(64,))
    assert not space.is_valid(conv_then_attention)


def test_max_params_constraint_counts_the_model_at_target_resolution():
    limit = {"type": "max_params_m", "limit": 0.15, "num_classes": 10}  # narrow: 0.106M, wide: 0.196M
    space = small_space(constraints=[limit], seeds=[])
    narrow = arch(["pooling"] * 4, [1, 1, 1, 1], [16, 32, 32, 64])
    wide = arch(["pooling"] * 4, [1, 1, 1, 1], [32, 48, 64, 64])
    space.validate(narrow)
    with pytest.raises(ValueError, match=r"constraint max_params_m violated: pooling-1x32 \| pooling-1x48 \| "
                                         r"pooling-1x64 \| pooling-1x64 has 0\.\d\dM parameters at 64px "
                                         r"\(10 classes\), limit 0.15M"):
        space.validate(wide)


# ---- sampling, mutation, enumeration --------------------------------------------------------


def test_samples_are_valid_and_cover_the_choices():
    space = small_space()
    rng = random.Random(0)
    samples = [space.sample(rng) for _ in range(200)]
    assert all(space.is_valid(a) for a in samples)
    assert {a.mixers[1] for a in samples} == {"sepconv", "pooling", "mhsa"}
    assert {a.dims[2] for a in samples} == {32, 64}
    assert [space.sample(random.Random(5)) for _ in range(3)] == [space.sample(random.Random(5))] * 3


def test_sampling_an_empty_space_raises():
    empty = small_space(stages=[{"mixer": ["pooling"], "depth": [1], "width": [64]},
                                {"mixer": ["pooling"], "depth": [1], "width": [32]}] * 2, seeds=[])
    with pytest.raises(ValueError, match=r"small: no valid architecture in 50 random draws; last rejection: .*"
                                         r"nondecreasing_width"):
        empty.sample(random.Random(0), max_tries=50)
    assert list(empty.enumerate()) == []


def test_mutate_changes_exactly_one_choice_to_a_valid_one():
    space = small_space()
    rng = random.Random(1)
    parent = space.sample(rng)
    changed_labels = set()
    for _ in range(100):
        child = space.mutate(parent, rng)
        before, after = space.choices_of(parent), space.choices_of(child)
        diff = [label for label in before if before[label] != after[label]]
        assert len(diff) == 1 and space.is_valid(child)
        changed_labels.add(diff[0])
        parent = child
    assert {label.split(".")[1] for label in changed_labels} == {"mixer", "depth", "width"}


def test_enumerate_yields_exactly_the_valid_architectures_in_a_fixed_order():
    space = small_space()
    listed = list(space.enumerate())
    labels, values = zip(*space.choices().items())
    brute_force = {a for a in (space.arch_from_choices(dict(zip(labels, combo)))
                               for combo in itertools.product(*values)) if space.is_valid(a)}
    assert len(listed) == len(set(listed)) == len(brute_force) and set(listed) == brute_force
    assert 0 < len(listed) < space.size()
    assert listed == list(space.enumerate())


def test_enumerate_tiny_space_lazily():
    tiny = get_space("hybrid_metaformer_tiny")
    first = list(itertools.islice(tiny.enumerate(), 50))
    assert len(set(first)) == 50 and all(tiny.is_valid(a) for a in first)
    assert first[0].mixers[0] == "sepconv" and first[0].depths[0] == 1


# ---- seeds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hybrid_metaformer", "hybrid_metaformer_tiny"])  # mixerbench keeps only seeds inside it
def test_shipped_seeds_are_valid_at_proxy_and_target_resolution(name):
    space = get_space(name)
    seeds = dict(space.seeds())  # raises if a seed is outside the space
    assert set(seeds) == SEED_NAMES
    for a in seeds.values():
        space.validate(a, img_sizes=(space.proxy_res, space.target_res))
    assert seeds["CAFormer-like"].mixers == ("sepconv", "sepconv", "mhsa", "mhsa")
    assert seeds["CDFFormer-like"].mixers == ("sepconv", "sepconv", "dynamic_filter", "dynamic_filter")
    assert seeds["DilateFormer-like"].mixers == ("msda", "msda", "mhsa", "mhsa")
    assert seeds["all-DynaMixer"].mixers == ("dynamixer",) * 4


def test_mixerbench_seeds_are_the_tiny_seeds_inside_it():
    bench, tiny = get_space("mixerbench"), dict(get_space("hybrid_metaformer_tiny").seeds())
    seeds = dict(bench.seeds())
    assert seeds and set(seeds) < SEED_NAMES
    assert all(seeds[n] == tiny[n] for n in seeds)


def test_flagship_seeds_use_s18_depths():
    assert {a.depths for _, a in get_space("hybrid_metaformer").seeds()} == {(3, 3, 9, 3)}
    assert get_space("hybrid_metaformer").target_res == 224


def test_a_seed_outside_the_space_is_a_definition_error():
    space = small_space(seeds=[{"name": "too-wide", "mixers": ["sepconv", "sepconv", "mhsa", "mhsa"],
                                "depths": [1, 1, 1, 1], "dims": [16, 32, 128, 128]}])
    with pytest.raises(ValueError, match=r"seed 'too-wide' is not in the space: small: stage3.width=128 is not a "
                                         r"choice"):
        space.seeds()
