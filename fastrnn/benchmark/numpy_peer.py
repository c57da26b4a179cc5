"""The NumPy baseline: what a careful user writes without fastrnn. The input
projection of all steps is hoisted into one matmul; each step does h @ W_hh.T and the
gate math with NumPy's vectorised ufuncs. A textbook GRU (reset_after=False) takes two
products per step, W_h{r,z} h and then W_hn (r * h)."""
import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumPyRNN:
    def __init__(self, mode, state_dict, num_layers, bidirectional, hidden_size,
                 nonlinearity="tanh", dtype=np.float32, reset_after=True):
        self.mode = mode
        self.reset_after = reset_after
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.hidden_size = hidden_size
        self.relu = nonlinearity == "relu"
        self.params = []
        for layer in range(num_layers):
            for d in range(self.directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih = np.asarray(state_dict["weight_ih" + sfx], dtype)
                rows = w_ih.shape[0]
                b_ih = np.asarray(state_dict.get("bias_ih" + sfx, np.zeros(rows)), dtype)
                b_hh = np.asarray(state_dict.get("bias_hh" + sfx, np.zeros(rows)), dtype)
                w_hh = np.asarray(state_dict["weight_hh" + sfx], dtype)
                self.params.append((np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T),
                                    b_ih, b_hh))

    def _scan(self, g_in, w_hh_t, b_hh, reverse):
        T, B, _ = g_in.shape
        H = self.hidden_size
        h = np.zeros((B, H), g_in.dtype)
        c = np.zeros((B, H), g_in.dtype)
        out = np.empty((T, B, H), g_in.dtype)
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            if self.mode == "LSTM":
                g = g_in[t] + h @ w_hh_t
                i, f, gg, o = _sigmoid(g[:, :H]), _sigmoid(g[:, H:2 * H]), \
                    np.tanh(g[:, 2 * H:3 * H]), _sigmoid(g[:, 3 * H:])
                c = f * c + i * gg
                h = o * np.tanh(c)
            elif self.mode == "GRU" and not self.reset_after:
                # every bias is in g_in; w_hh_t is (H, 3H): r, z columns, then n's
                rz = _sigmoid(g_in[t, :, :2 * H] + h @ w_hh_t[:, :2 * H])
                r, z = rz[:, :H], rz[:, H:]
                n = np.tanh(g_in[t, :, 2 * H:] + (r * h) @ w_hh_t[:, 2 * H:])
                h = (h - n) * z + n
            elif self.mode == "GRU":
                gh = h @ w_hh_t + b_hh
                r = _sigmoid(g_in[t, :, :H] + gh[:, :H])
                z = _sigmoid(g_in[t, :, H:2 * H] + gh[:, H:2 * H])
                n = np.tanh(g_in[t, :, 2 * H:] + r * gh[:, 2 * H:])
                h = (h - n) * z + n
            else:
                a = g_in[t] + h @ w_hh_t
                h = np.maximum(a, 0) if self.relu else np.tanh(a)
            out[t] = h
        return out

    def __call__(self, x):
        """x (T, B, I) -> output (T, B, D*H)."""
        seq = x
        for layer in range(self.num_layers):
            halves = []
            for d in range(self.directions):
                w_ih_t, w_hh_t, b_ih, b_hh = self.params[layer * self.directions + d]
                T, B, _ = seq.shape
                g_in = (seq.reshape(T * B, -1) @ w_ih_t).reshape(T, B, -1) + b_ih
                if self.mode != "GRU" or not self.reset_after:
                    g_in += b_hh
                halves.append(self._scan(g_in, w_hh_t, b_hh, reverse=d == 1))
            seq = halves[0] if len(halves) == 1 else np.concatenate(halves, axis=2)
        return seq
