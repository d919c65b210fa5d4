import json

from click.testing import CliRunner

from wordlstm.cli import main
from wordlstm.names import propose_names


def test_split_names_are_proposed_and_words_are_not():
    # 麝 月 is a name jieba splits: frequent, cohesive, followed by 道/笑道.
    lines = []
    for _ in range(30):
        lines.append(["麝", "月", "笑道", "：", "你", "来", "了", "。"])
        lines.append(["宝玉", "听", "了", "，", "便", "叫", "麝", "月", "。"])
        lines.append(["今天", "月", "很", "亮", "，", "大家", "说话", "。"])  # 月 alone: common
    found = {c.name: c for c in propose_names(lines, min_count=10)}
    assert "麝月" in found and found["麝月"].count == 60
    assert found["麝月"].cohesion == 1.0
    assert "大家说话" not in found and "月很" not in found


def test_names_cli_writes_a_user_dict_and_reports_repairs(tmp_path):
    text = "".join(f"麝月笑道：“你来了。”宝玉听了，便叫麝月。第{i}天晚上，月很亮。\n"
                   for i in range(30))
    src = tmp_path / "n.txt"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "names.txt"
    r = CliRunner().invoke(main, ["names", str(src), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert "麝月 60 nr" in out.read_text(encoding="utf-8").splitlines()
    assert result["repair"]["repaired"] == 60 and result["repair"]["whole_before"] == 0
