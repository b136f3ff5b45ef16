"""The scripts in tools/ run as the paper writes them: from a plain checkout with only the
requirements installed, from any working folder, and also after ``pip install -e .``; a
missing package is one line naming it."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = sorted(os.path.relpath(os.path.join(folder, name), REPO)
                 for folder, _, names in os.walk(os.path.join(REPO, "tools"))
                 for name in names if name.endswith(".py"))


def clean_env():
    """This environment without PYTHONPATH: nothing but the script itself may find lib/."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_every_pipeline_stage_has_its_script():
    for script in ("tools/stage1/train_cls.py", "tools/stage1/make_seeds.py",
                   "tools/stage2/train_sgan.py", "tools/stage2/infer_cam.py",
                   "tools/eval_mIoU.py", "tools/threshold_curve.py"):
        assert script in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_from_a_plain_checkout_and_another_folder(script, tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, script), "--help"], cwd=tmp_path,
                            env=clean_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_describes_the_script_with_the_first_paragraph_of_its_docstring(script, tmp_path):
    """Whole sentences, not the docstring's first line cut mid-sentence."""
    import ast

    with open(os.path.join(REPO, script)) as f:
        paragraph = ast.get_docstring(ast.parse(f.read()), clean=False).split("\n\n")[0]
    result = subprocess.run([sys.executable, os.path.join(REPO, script), "--help"], cwd=tmp_path,
                            env=clean_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "".join(paragraph.split()) in "".join(result.stdout.split())  # wrapped anyhow


@pytest.mark.parametrize("script", ["tools/stage2/train_sgan.py", "tools/eval_mIoU.py"])
def test_help_lists_the_config_keys_and_where_they_are_described(script):
    result = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "README.md, section Configuration" in result.stdout
    assert "the paper's are listed in docs/recipe.md, section 10" in result.stdout
    with open(os.path.join(REPO, "docs", "recipe.md")) as f:
        section = f.read().split("\n## 10. The paper's configuration\n")[1].split("\n## ")[0]
    for key in ("combine_seedseg", "ignore_conflict", "seed_loss_ratio", "power"):
        assert f"| {key} |" in section, key
    with open(os.path.join(REPO, "README.md")) as f:
        assert "\n## Configuration\n" in f.read()
    for pair in ("max_iter=8000", "width_mult=1.0", "device=auto", "test_scales=[288,385,481]"):
        assert pair in result.stdout


def test_lib_is_not_installed_in_the_test_environment(tmp_path):
    """So the test above proves the plain checkout: no installed ``lib`` could stand in."""
    result = subprocess.run([sys.executable, "-c", "import lib"], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True)
    assert result.returncode != 0 and "No module named 'lib'" in result.stderr


def test_scripts_also_run_after_pip_install_editable(tmp_path):
    prefix = tmp_path / "prefix"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                              "--no-build-isolation", "--prefix", str(prefix), "-e", REPO],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    site_dir = next(prefix.glob("lib/python*/site-packages"))
    # the prefix as a site folder (its .pth files processed), as an installed environment has it
    code = (f"import site, sys, runpy; site.addsitedir({str(site_dir)!r}); import lib; "
            f"print(lib.__file__); sys.argv = ['eval_mIoU.py', '--help']; "
            f"runpy.run_path({os.path.join(REPO, 'tools', 'eval_mIoU.py')!r}, "
            f"run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(os.path.join(REPO, "lib", "__init__.py"))
    assert "usage:" in result.stdout


@pytest.mark.parametrize("module, package", [("cv2", "opencv-python-headless"),
                                             ("yaml", "pyyaml")])
def test_a_missing_package_is_one_line_naming_it(module, package, tmp_path):
    script = os.path.join(REPO, "tools", "stage2", "infer_cam.py")
    code = (f"import sys, runpy; sys.modules[{module!r}] = None; "
            f"sys.argv = ['infer_cam.py', '--cfg_file', 'x.yml']; "
            f"runpy.run_path({script!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"'{package}' is not installed" in result.stderr
    assert "pip install -r requirements.txt" in result.stderr


def test_heavy_optional_packages_are_imported_only_where_used(tmp_path):
    """A threshold run, the evaluator and the picture modules import neither pydensecrf nor
    matplotlib until a CRF runs or a figure is drawn, and drawing switches no backend."""
    code = ("import sys; import lib.stage2.infer_cam, lib.stage1.make_seeds, "
            "lib.evaluation.score, lib.evaluation.curve, lib.pictures.panels, "
            "lib.pictures.seed_figure, lib.seeds.writer; "
            "print(sorted(m for m in ('pydensecrf', 'matplotlib') if m in sys.modules)); "
            "import matplotlib; backend = matplotlib.get_backend(); "
            "import numpy as np; from lib.pictures.panels import Panel, save_seed_grid; "
            f"save_seed_grid([[Panel('labels', np.zeros((4, 4), np.uint8))]], "
            f"{str(tmp_path / 'grid.png')!r}); print(matplotlib.get_backend() == backend)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]
    assert (tmp_path / "grid.png").stat().st_size > 0
