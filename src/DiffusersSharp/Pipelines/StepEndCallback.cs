using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// diffusers' <c>callback_on_step_end(pipe, i, t, callback_kwargs)</c>, the one per-step hook of every pipeline: called
/// after step <paramref name="step"/> (0-based) at <paramref name="timestep"/> with the loop's named tensors
/// (<c>latents</c> after the step, and the pipeline's own: Stable Diffusion's <c>prompt_embeds</c> (the
/// classifier-free-guidance batch the UNet sees, as diffusers passes it), <c>negative_prompt_embeds</c>, inpainting's
/// <c>mask</c> and <c>masked_image_latents</c>). Replacing an entry changes what the following steps use, as diffusers'
/// returned dictionary does. The tensors are valid during the call (clone one to keep it); a replacement the callback
/// makes is kept by the loop, and the latents it replaces are freed.
/// </summary>
public delegate void StepEndCallback(int step, double timestep, IDictionary<string, Tensor> tensors);
