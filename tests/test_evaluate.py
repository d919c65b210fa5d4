import numpy as np

from wordlstm.evaluate import evaluate, evaluate_carried, held_out, topk_hits
from wordlstm.generate import Decoder, StepModel
from wordlstm.modeldir import load_inference, read_config
from wordlstm.vectors import load_vectors


def test_topk_hits_counts_ranks():
    scores = np.array([[0.9, 0.5, 0.1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    truth = np.array([0, 0, 2])  # ranks 0, 2, 2
    assert topk_hits(scores, truth, ks=(1, 2, 3)) == {1: 1, 2: 1, 3: 3}


def _held_out(model_dir, segmented):
    config = read_config(model_dir)
    vectors = load_vectors(model_dir / "vectors.bin")
    window = config["model"]["window"]
    ids, starts, base = held_out(str(segmented), vectors.index, window, 0.05, whole=False)
    return config, vectors.target_space(config["model"]["target"]), window, ids, starts, base


def test_a_perfect_predictor_scores_one(model_dir, segmented):
    """Replace the model's head so it outputs the true next vector: top-1 must be 100%."""
    config, space, window, ids, starts, base = _held_out(model_dir, segmented)

    class Oracle(StepModel):
        """Answers each batch with the true next vectors (evaluate goes through `starts` in order)."""

        done = 0

        def run(self, windows):
            batch = starts[self.done:self.done + len(windows)]
            assert (ids[batch[:, None] + np.arange(window)] == windows).all()
            self.done += len(windows)
            return space[ids[batch + window]], None

    oracle = Oracle(load_inference(model_dir, config))
    result = evaluate(oracle, Decoder(space), ids, starts, window, base)
    assert result["top1"] == 1.0 and result["mean_cosine"] > 0.999
    assert 0 < result["baseline_top1"] < 1


def test_carried_and_window_evaluation_agree_roughly(model_dir, segmented):
    config, space, window, ids, starts, base = _held_out(model_dir, segmented)
    step = StepModel(load_inference(model_dir, config))
    a = evaluate(step, Decoder(space), ids, starts, window, base)
    b = evaluate_carried(step, Decoder(space), ids, int(starts[0]), int(starts[-1]) + window + 1,
                         window, base)
    assert abs(a["top1"] - b["top1"]) < 0.2 and b["windows"] > 0
    assert abs(a["baseline_top1"] - b["baseline_top1"]) < 0.1
