"""Flag parsing shared by the entry points (launch/cli.py)."""

from launch import cli


def test_checkpoint_list_keeps_an_existing_run_folder_with_commas_whole(tmp_path):
    run = tmp_path / "arg=bickley,seed=0"  # a protocol or sweep run's folder
    run.mkdir()
    parse = cli._CheckpointListParser().parse
    assert parse(f"dibco_lite,{run},dibco_unet") == ["dibco_lite", str(run), "dibco_unet"]
    assert parse(str(run)) == [str(run)]
    # A folder that does not exist is split as any list: the checkpoint loader then names the piece.
    assert parse(f"{tmp_path}/arg=nabuco,seed=0") == [f"{tmp_path}/arg=nabuco", "seed=0"]
    assert parse("dibco_lite, dibco_unet") == ["dibco_lite", "dibco_unet"]
    assert parse("") == []


def test_checkpoint_list_prefers_the_longest_existing_path(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a,b").mkdir()
    parse = cli._CheckpointListParser().parse
    assert parse(f"{tmp_path}/a,b,c") == [f"{tmp_path}/a,b", "c"]
    assert parse(["x", "y"]) == ["x", "y"]  # a list given in code is taken as it is
