namespace DiffusersSharp.Models;

/// <summary>AutoencoderKL as a pipeline's <see cref="IVae"/>.</summary>
public sealed partial class AutoencoderKL : IVae
{
    public string ClassName => nameof(AutoencoderKL);
    public int InChannels => Config.InChannels;
    public int LatentChannels => Config.LatentChannels;
    public IReadOnlyList<int> BlockOutChannels => Config.BlockOutChannels;

    IVaeEncoding IVae.Encode(TorchSharp.torch.Tensor images) => Encode(images);

    void IVae.SetEvalMode() => eval();
}
