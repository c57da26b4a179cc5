"""A pure-NumPy reference of every model, written from the equations in DESIGN.md and
nothing else: one sequence at a time, one step at a time, in float64. It shares no code
with fastrnn, so it is an independent oracle for the kernels."""
import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_cell(x, h, c, p):
    gates = p["w_ih"] @ x + p["b_ih"] + p["w_hh"] @ h + p["b_hh"]
    i, f, g, o = np.split(gates, 4)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    if p.get("w_hr") is not None:
        h = p["w_hr"] @ h
    return h, c


def gru_cell(x, h, c, p):
    gi = p["w_ih"] @ x + p["b_ih"]
    gh = p["w_hh"] @ h + p["b_hh"]
    i_r, i_z, i_n = np.split(gi, 3)
    h_r, h_z, h_n = np.split(gh, 3)
    r = _sigmoid(i_r + h_r)
    z = _sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h, None


def gru_textbook_cell(x, h, c, p):
    """reset_after=False (Cho et al. 2014): b_hn outside r, W_hn applied to r * h."""
    w_r, w_z, w_n = np.split(p["w_ih"], 3)
    u_r, u_z, u_n = np.split(p["w_hh"], 3)
    bi_r, bi_z, bi_n = np.split(p["b_ih"], 3)
    bh_r, bh_z, bh_n = np.split(p["b_hh"], 3)
    r = _sigmoid(w_r @ x + bi_r + u_r @ h + bh_r)
    z = _sigmoid(w_z @ x + bi_z + u_z @ h + bh_z)
    n = np.tanh(w_n @ x + bi_n + u_n @ (r * h) + bh_n)
    return (1.0 - z) * n + z * h, None


def rnn_cell(x, h, c, p, relu=False):
    a = p["w_ih"] @ x + p["b_ih"] + p["w_hh"] @ h + p["b_hh"]
    return (np.maximum(a, 0.0) if relu else np.tanh(a)), None


def _params(sd, layer, direction, gate_rows):
    sfx = f"_l{layer}" + ("_reverse" if direction else "")

    def get(k):
        return np.asarray(sd[k], np.float64) if k in sd else None

    return {
        "w_ih": get("weight_ih" + sfx),
        "w_hh": get("weight_hh" + sfx),
        "b_ih": get("bias_ih" + sfx) if ("bias_ih" + sfx) in sd else np.zeros(gate_rows),
        "b_hh": get("bias_hh" + sfx) if ("bias_hh" + sfx) in sd else np.zeros(gate_rows),
        "w_hr": get("weight_hr" + sfx),
    }


def forward(mode, sd, x, num_layers, bidirectional, hidden_size, proj_size=0,
            h0=None, c0=None, lengths=None, relu=False, reset_after=True):
    """x (T, B, I) time-major; h0 (L*D, B, P), c0 (L*D, B, H); reset_after=False: the
    textbook GRU. Returns
    (out (T, B, D*P), h_n, c_n or None) in float64, torch's packed semantics."""
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    P = proj_size or hidden_size
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[mode] * hidden_size
    cell = {"LSTM": lstm_cell, "GRU": gru_cell if reset_after else gru_textbook_cell,
            "RNN": lambda x, h, c, p: rnn_cell(x, h, c, p, relu)}[mode]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((num_layers * D, B, P)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((num_layers * D, B, hidden_size)) if c0 is None else np.asarray(c0, np.float64)
    h_n = np.zeros_like(h0)
    c_n = np.zeros_like(c0)
    out = np.zeros((T, B, D * P))
    for b in range(B):
        seq = x[:lengths[b], b]
        for layer in range(num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                p = _params(sd, layer, d, gates)
                h, c = h0[k, b], c0[k, b]
                ys = []
                steps = range(len(seq) - 1, -1, -1) if d else range(len(seq))
                for t in steps:
                    h, c = cell(seq[t], h, c, p)
                    ys.append(h)
                if d:
                    ys = ys[::-1]
                outs.append(np.stack(ys))
                h_n[k, b] = h
                if c is not None:
                    c_n[k, b] = c
            seq = np.concatenate(outs, axis=1)
        out[:lengths[b], b] = seq
    return out, h_n, (c_n if mode == "LSTM" else None)


def beam_search(step, state, sos, eos, beam_size, max_len, length_penalty=1.0, n_best=1):
    """Beam search from its definition, for one source: step(state, token) -> (logits,
    state) (sos None: state is (logits, state) of a prompt already run, the first
    logits given). Every live hypothesis is extended by every token; the beam_size
    best extensions by summed log-softmax probability are kept, ties to the lower token
    and then the better-ranked parent; one ending in eos or reaching max_len tokens is
    finished with score sum / len ** length_penalty (len counting eos when produced).
    Ends when nothing is live; returns the n_best finished [(ids, score)], best first,
    ties to the earlier finished."""
    if max_len == 0:
        return [([], 0.0)]
    live = [([], 0.0, state)]           # (ids, sum, state), best first
    finished = []
    for t in range(max_len):
        cands = []
        for rank, (ids, total, st) in enumerate(live):
            if t == 0 and sos is None:
                logits, st = st
            else:
                logits, st = step(st, ids[-1] if ids else sos)
            z = np.asarray(logits, np.float64)
            logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
            for tok in range(len(logp)):
                cands.append((-(total + logp[tok]), tok, rank, ids, st))
        cands.sort(key=lambda c: c[:3])
        live = []
        for neg, tok, _, ids, st in cands[:beam_size]:
            total = -neg
            if tok == eos or t + 1 == max_len:
                seq = ids if tok == eos else ids + [tok]
                count = len(ids) + 1
                score = total / count ** length_penalty if length_penalty else total
                finished.append((seq, score))
            else:
                live.append((ids + [tok], total, st))
        if not live:
            break
    order = sorted(range(len(finished)), key=lambda i: -finished[i][1])
    return [finished[i] for i in order[:n_best]]
