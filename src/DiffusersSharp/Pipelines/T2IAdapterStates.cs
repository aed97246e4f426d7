using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// The T2I-Adapter part of one pipeline call, plugged into <see cref="GuidedDenoisingLoop"/>: the adapter states,
/// computed once before the loop (scaled, repeated per image, doubled for guidance), go to the UNet as its
/// <c>down_intrablock_additional_residuals</c> at every step before <paramref name="cutoff"/> (diffusers' SDXL
/// <c>int(num_inference_steps · adapter_conditioning_factor)</c>; Stable Diffusion: every step), and none after. The
/// states belong to the call's dispose scope; the UNet reads them and never writes into them.
/// </summary>
internal sealed class T2IAdapterStates(IReadOnlyList<Tensor> states, int cutoff)
{
    /// <summary>The states the UNet adds, in down-block order.</summary>
    public IReadOnlyList<Tensor> States => states;

    /// <summary>The residuals for the UNet call of step <paramref name="step"/> (null: none).</summary>
    public IReadOnlyList<Tensor>? At(int step) => step < cutoff ? states : null;
}
