"""Run by test_fsdp_state.py under torchrun: the recipe's checkpoint and EMA code on FSDP2 shards (CPU, gloo),
for a STIV backbone, a Wan backbone (one FSDP unit per ``WanTransformerBlock``) and a Wan backbone with LoRA
(frozen base, trainable adapters)."""

import gc
import sys

import torch
import torch.distributed as dist
from diffusers.training_utils import EMAModel
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard

from anyframe.models.dit import stiv_tiny
from anyframe.models.wan import build_wan
from anyframe.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from anyframe.training.recipe import ema_state_dict, full_ema_state, shard_like

KIND = "stiv"


def build():
    torch.manual_seed(0)
    if KIND == "stiv":
        model = stiv_tiny(in_channels=4, text_dim=32)
    else:
        model = build_wan("tiny")
        if KIND == "wan-lora":
            from peft import LoraConfig

            model.requires_grad_(False)
            model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0",
                                                                             "ffn.net.0.proj", "ffn.net.2"]))
    # one FSDP unit per block, as accelerate's TRANSFORMER_BASED_WRAP does with the model's _no_split_modules
    blocks = [m for m in model.modules() if type(m).__name__ in model._no_split_modules]
    assert len(blocks) == 2, blocks
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    return model


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def step(model, opt, ema, seed):
    g = torch.Generator().manual_seed(seed)
    if KIND == "stiv":
        x, ctx = torch.randn(2, 4, 4, 8, 8, generator=g), torch.randn(2, 6, 32, generator=g)
    else:
        x, ctx = torch.randn(2, 16, 3, 4, 4, generator=g), torch.randn(2, 6, 32, generator=g)
    model(x, torch.tensor([300.0, 500.0]), ctx).sample.square().mean().backward()
    opt.step()
    opt.zero_grad()
    ema.step(trainable(model))


def main(folder: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)

    # 4 steps straight
    model = build()
    opt = torch.optim.AdamW(trainable(model), lr=1e-2, foreach=False)
    ema = EMAModel(trainable(model), decay=0.9)
    for i in range(4):
        step(model, opt, ema, i)
    straight = ema_state_dict(model, ema)

    # 2 steps, checkpoint (as the recipe writes it), a fresh sharded model resumes, 2 more steps
    model = build()
    opt = torch.optim.AdamW(trainable(model), lr=1e-2, foreach=False)
    ema = EMAModel(trainable(model), decay=0.9)
    for i in range(2):
        step(model, opt, ema, i)
    model_state, optim_state = get_model_state_dict(model, options=full), get_optimizer_state_dict(model, opt, options=full)
    ema_state = full_ema_state(ema)  # a collective: every rank gathers its DTensor shadows
    if rank == 0:
        save_checkpoint(Checkpoint(2, model_state, {"batches_consumed": 2}, optim_state, ema_state), folder)
    dist.barrier()
    ckpt = load_checkpoint(f"{folder}/step-00000002")
    model = build()
    opt = torch.optim.AdamW(trainable(model), lr=1e-2, foreach=False)
    set_model_state_dict(model, ckpt.model, options=StateDictOptions(full_state_dict=True))
    set_optimizer_state_dict(model, opt, ckpt.optimizer, options=StateDictOptions(full_state_dict=True, strict=False))
    ema = EMAModel(trainable(model), decay=0.9)
    ema.load_state_dict(ckpt.ema)
    ema.shadow_params = shard_like(ema.shadow_params, trainable(model))
    for i in range(2, 4):
        step(model, opt, ema, i)
    resumed = ema_state_dict(model, ema)
    if rank == 0:
        same = straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
        print("EXACT" if same else "DIFFERENT", flush=True)
    # The sharded models hold the process group (through their device mesh): freed before it, so that the
    # group ends in destroy_process_group, not in a destructor at exit (the two-rank hang fixed in train()).
    del model, opt, ema, ckpt
    gc.collect()
    dist.barrier()  # no rank tears gloo down while another is still in a collective
    dist.destroy_process_group()


if __name__ == "__main__":
    KIND = sys.argv[2] if len(sys.argv) > 2 else "stiv"
    main(sys.argv[1])
