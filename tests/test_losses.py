import math

import torch

from brushwork import losses

LN2 = math.log(2)


def test_bce_discriminator_loss_matches_hand_computation():
    # D(x) = sigmoid(ln 3) = 0.75 on the real, D(G(z)) = sigmoid(0) = 0.5 on the fake.
    loss = losses.bce_discriminator_loss(torch.tensor([math.log(3)]), torch.tensor([0.0]))
    expected = -math.log(0.75) - math.log(1 - 0.5)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_seed_article_objectives():
    # The article's discriminator maximises log D(x) + log(1 - D(G(z))); we minimise its negation.
    d_real, d_fake = 0.9, 0.2
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    ours = losses.bce_discriminator_loss(torch.tensor([logit(d_real)]), torch.tensor([logit(d_fake)]))
    assert math.isclose(ours.item(), -(math.log(d_real) + math.log(1 - d_fake)), rel_tol=1e-5)
    # The article's generator loss E[log(1 - D(G(z)))] (saturating), exactly.
    g = losses.minimax_generator_loss(torch.tensor([logit(d_fake)]))
    assert math.isclose(g.item(), math.log(1 - d_fake), rel_tol=1e-5)


def test_non_saturating_generator_loss():
    assert math.isclose(losses.bce_generator_loss(torch.tensor([0.0, 0.0])).item(), LN2, rel_tol=1e-6)
    # Saturation: when D rejects fakes (logit -10) the minimax gradient vanishes, NS does not.
    fake = torch.tensor([-10.0], requires_grad=True)
    losses.minimax_generator_loss(fake).backward()
    minimax_grad = fake.grad.abs().item()
    fake.grad = None
    losses.bce_generator_loss(fake).backward()
    assert fake.grad.abs().item() > 1000 * minimax_grad


def test_hinge_losses():
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.5])
    # real: mean(relu(1-0.5), relu(1-2)) = 0.25; fake: mean(relu(1-2), relu(1+0.5)) = 0.75
    assert math.isclose(losses.hinge_discriminator_loss(real, fake).item(), 1.0, rel_tol=1e-6)
    assert math.isclose(losses.hinge_generator_loss(fake).item(), 0.75, rel_tol=1e-6)


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    w = torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1)
    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    logits = (x * w).sum(dim=(1, 2, 3))
    # grad_x D = w at every pixel: ||grad||^2 = 4 pixels * (1 + 4 + 9)
    assert math.isclose(losses.r1_penalty(logits, x).item(), 4 * 14.0, rel_tol=1e-6)
