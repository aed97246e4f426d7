namespace DiffusersSharp.Models;

/// <summary>AutoencoderKL as a pipeline's <see cref="IVae"/>.</summary>
public sealed partial class AutoencoderKL : IVae
{
    /// <inheritdoc/>
    public string ClassName => nameof(AutoencoderKL);
    /// <inheritdoc/>
    public int InChannels => Config.InChannels;
    /// <inheritdoc/>
    public int LatentChannels => Config.LatentChannels;
    /// <inheritdoc/>
    public IReadOnlyList<int> BlockOutChannels => Config.BlockOutChannels;

    IVaeEncoding IVae.Encode(TorchSharp.torch.Tensor images) => Encode(images);

    void IVae.SetEvalMode() => eval();
}
