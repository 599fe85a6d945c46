"""The distillation loss against PyTorch: Hinton et al.'s
alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y),
written as the usual PyTorch recipe (F.kl_div on log-probabilities with
log_target=True, reduction='batchmean'), for a few (alpha, T); saves the
logits, targets, each loss and its gradient with respect to the student's
logits. Run: .venv/bin/python tools/gen_distill_fixture.py"""
import os
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates/kindling-train/tests/fixtures/distill.safetensors")
CASES = [(0.5, 2.0), (1.0, 4.0), (0.0, 1.0), (0.9, 1.0)]

torch.manual_seed(0)
N, V = 12, 37
# Rounded to f32 first, so both sides start from the same numbers.
student = (torch.randn(N, V, dtype=torch.float64) * 2.0).float().double()
teacher = (torch.randn(N, V, dtype=torch.float64) * 3.0).float().double()
targets = torch.randint(0, V, (N,))
ref = {
    "student": student.float().contiguous(),
    "teacher": teacher.float().contiguous(),
    "targets": targets.to(torch.int64),
}
for i, (alpha, T) in enumerate(CASES):
    s = student.clone().requires_grad_(True)
    kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(teacher / T, -1),
                  log_target=True, reduction="batchmean") * T * T
    loss = alpha * kl + (1 - alpha) * F.cross_entropy(s, targets)
    loss.backward()
    ref[f"case{i}.alpha_temperature"] = torch.tensor([alpha, T], dtype=torch.float32)
    ref[f"case{i}.loss"] = loss.detach().float().reshape(1)
    ref[f"case{i}.grad"] = s.grad.float().contiguous()
    print(f"alpha {alpha} T {T}: loss {loss.item():.6f}")
save_file(ref, OUT)
