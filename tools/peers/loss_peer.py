"""Reference value of Pulmoseg's training loss (soft Dice on the infiltrate class plus
cross-entropy) for the fixed tensors of `train-native/src/train/loss.rs`'s test, in PyTorch.

Run: python3 tools/peers/loss_peer.py
"""
import torch
import torch.nn.functional as F

shape = (2, 2, 2, 3, 4)  # batch, classes, depth, height, width
n = 2 * 2 * 3 * 4
logits = torch.tensor([((i * 37) % 23) / 5.0 - 2.0 for i in range(2 * n)],
                      dtype=torch.float64).reshape(shape)
target = torch.tensor([1.0 if (i * 7) % 5 < 2 else 0.0 for i in range(n)],
                      dtype=torch.float64).reshape(2, 2, 3, 4)

ce = F.cross_entropy(logits, target.long())
p = torch.softmax(logits, dim=1)[:, 1]
smooth = 1.0
dice = (2 * (p * target).sum() + smooth) / (p.sum() + target.sum() + smooth)
print(f"cross_entropy {ce.item():.12f}")
print(f"soft_dice {dice.item():.12f}")
print(f"loss {(ce + 1 - dice).item():.12f}")
