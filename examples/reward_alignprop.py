"""Fine-tune Stable Diffusion's UNet (LoRA) with an AesMamba model as a differentiable reward (GPU).

Reward back-propagation in the DRaFT-K / AlignProp style: the last K denoising steps and the VAE decode keep
their graph, the reward's gradient flows into LoRA adapters of the UNet. Needs a CUDA GPU, ``diffusers`` and
``peft`` (``pip install diffusers peft``), the Stable Diffusion weights (downloaded by diffusers on first use)
and an AesMamba model you trained or converted (``aesmamba train ...`` / ``aesmamba export ... --weights``).

    python examples/reward_alignprop.py runs/my-v-model --steps 200 --output runs/sd-aesthetic-lora
    python examples/reward_alignprop.py runs/my-v-model --check      # the reward alone, on CPU, no diffusers

Watch the reward and look at the samples: aesthetic rewards are gamed (see docs/reward.md, "Gaming"); keep the
run short, the LoRA rank small, and check the result with another scorer.
"""

from __future__ import annotations

import argparse
import random
import sys

import torch

import aesmamba_hf
from aesmamba_hf.reward import differentiable_reward_fn

PROMPTS = ["a photo of a cat", "a mountain lake at dawn", "a portrait of an old fisherman", "a bowl of fruit",
           "a street in the rain at night", "a red bicycle against a wall"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="AesMamba model folder (or alias of a downloaded one)")
    parser.add_argument("--base", default="stable-diffusion-v1-5/stable-diffusion-v1-5", help="diffusers model")
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--inference-steps", type=int, default=20)
    parser.add_argument("--grad-steps", type=int, default=1, help="K: denoising steps that keep their graph")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--views", type=int, default=2, help="reward views (random crops/flips), see docs")
    parser.add_argument("--head", default=None, help="reward head (default: the overall head)")
    parser.add_argument("--output", default="runs/sd-aesthetic-lora")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="only build the reward and score random pixels")
    return parser.parse_args(argv)


def check_reward(args: argparse.Namespace) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reward = aesmamba_hf.load_reward(args.model, value_range=(-1, 1), device=device, head=args.head,
                                     views=args.views)
    pixels = (torch.rand(2, 3, 512, 512, device=device) * 2 - 1).requires_grad_()
    rewards, meta = differentiable_reward_fn(reward)(pixels, PROMPTS[:2], [{}, {}])
    (-rewards.mean()).backward()
    print(f"rewards {rewards.tolist()}  range {meta['reward_range']}  grad norm {pixels.grad.norm():.3g}")
    return 0


def train(args: argparse.Namespace) -> int:
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from peft import LoraConfig

    if not torch.cuda.is_available():
        sys.exit("this example needs a CUDA GPU (use --check to try the reward on CPU)")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    device, dtype = "cuda", torch.bfloat16
    pipe = StableDiffusionPipeline.from_pretrained(args.base, torch_dtype=dtype).to(device)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    pipe.unet.requires_grad_(False)
    pipe.unet.add_adapter(LoraConfig(r=args.lora_rank, lora_alpha=args.lora_rank,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    lora = [p for p in pipe.unet.parameters() if p.requires_grad]
    for p in lora:
        p.data = p.data.float()  # train the adapters in float32, run the rest in bf16
    optimizer = torch.optim.AdamW(lora, lr=args.lr)
    reward = aesmamba_hf.load_reward(args.model, value_range=(-1, 1), device=device, head=args.head,
                                     views=args.views, autocast_dtype=dtype)
    reward_fn = differentiable_reward_fn(reward)
    print(f"reward: {reward.metadata()}")

    for step in range(args.steps):
        prompts = random.choices(PROMPTS, k=args.batch_size)
        with torch.no_grad():
            embeds, negative = pipe.encode_prompt(prompts, device, 1, True)
        text = torch.cat([negative, embeds])
        pipe.scheduler.set_timesteps(args.inference_steps, device=device)
        latents = torch.randn(args.batch_size, 4, 64, 64, device=device, dtype=dtype)
        timesteps = pipe.scheduler.timesteps
        for i, t in enumerate(timesteps):
            keep_graph = i >= len(timesteps) - args.grad_steps
            with torch.set_grad_enabled(keep_graph), torch.autocast("cuda", dtype=dtype):
                noise = pipe.unet(torch.cat([latents] * 2), t, encoder_hidden_states=text).sample
                uncond, cond = noise.chunk(2)
                noise = uncond + 7.5 * (cond - uncond)
                latents = pipe.scheduler.step(noise, t, latents).prev_sample
        with torch.autocast("cuda", dtype=dtype):
            images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample  # [-1, 1], overshoots a bit
        rewards, _ = reward_fn(images.clamp(-1, 1), prompts, [{}] * len(prompts))
        loss = -rewards.mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora, 1.0)
        optimizer.step()
        print(f"step {step}: reward {rewards.mean().item():.3f}", flush=True)
    pipe.unet.save_pretrained(args.output)  # the LoRA adapters
    print(f"saved the LoRA adapters to {args.output}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return check_reward(args) if args.check else train(args)


if __name__ == "__main__":
    sys.exit(main())
