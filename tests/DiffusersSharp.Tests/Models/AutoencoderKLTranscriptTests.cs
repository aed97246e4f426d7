using DiffusersSharp.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Models;

/// <summary>
/// AutoencoderKL config variants the golden tiny-sd VAE lacks (3 levels with layers_per_block 2, one level with 16
/// latent channels, 4 levels with a clamped logvar): each vae-* folder of golden/model-transcripts-unet2d loaded with
/// <see cref="AutoencoderKL.FromPretrained"/>; encode (the posterior's mean, std, logvar, var), decode and
/// <c>vae(image, sample_posterior=False)</c> against a numpy transcription of diffusers 0.25.1 validated on the tiny-sd
/// VAE (that folder's README). <see cref="Tol.ModelAbs"/> as the tiny-sd VAE golden tests; std and var, which reach
/// exp(10) and exp(20) where logvar is clamped, relative to 1e-5 (<see cref="Tol.RelClose"/>).
/// </summary>
public class AutoencoderKLTranscriptTests(ITestOutputHelper log)
{
    private static readonly TranscriptFolder Transcript = new("model-transcripts-unet2d");

    /// <summary>Every VAE variant of cases.json.</summary>
    public static TheoryData<string> Variants() => Transcript.Ids("vae_cases");

    /// <summary>The VAE variants with tiled cases (<c>enable_tiling()</c> on inputs larger than a tile).</summary>
    public static TheoryData<string> TiledVariants() => Transcript.Ids("vae_cases", c => c.GetProperty("tiled").GetBoolean());

    private void Check(string what, Tensor actual, Tensor expected) => TranscriptFolder.Close(log, what, actual, expected);

    [Theory, MemberData(nameof(Variants))]
    public void EncodeDecodeAndReconstructMatchTheDiffusersTranscript(string id)
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderKL.FromPretrained(Transcript.Path(id));
        using var golden = Transcript.Open();
        using var image = golden.Load(id + "/image");
        using var z = golden.Load(id + "/z");
        using var decoded = golden.Load(id + "/decode");
        using var reconstructed = golden.Load(id + "/reconstruct_mode");
        foreach (bool channelsLast in new[] { true, false })
        {
            vae.ChannelsLast = channelsLast;
            string cl = $"{id}, channels-last {channelsLast}";
            using (var posterior = vae.Encode(image).LatentDist)
            {
                foreach (var (name, actual) in new[] { ("mean", posterior.Mean), ("logvar", posterior.LogVar) })
                {
                    using var e = golden.Load($"{id}/encode/{name}");
                    Check($"{cl}: posterior {name}", actual, e);
                }
                foreach (var (name, actual) in new[] { ("std", posterior.Std), ("var", posterior.Var) })
                {
                    using var e = golden.Load($"{id}/encode/{name}");
                    Tol.RelClose(actual, e, 1e-5, $"{cl}: posterior {name}");
                }
            }
            using var output = vae.Decode(z).Sample;
            Check($"{cl}: decode", output, decoded);
            using var reconstruction = vae.Forward(image).Sample;
            Check($"{cl}: vae(image, sample_posterior=False)", reconstruction, reconstructed);
        }
    }

    /// <summary>
    /// diffusers' tiled_encode / tiled_decode with the config's tile sizes (sample_size, sample_size / 2^(levels - 1),
    /// overlap 0.25): edge tiles smaller than a tile, a blend extent of 0 (4 levels: a 2-cell latent tile), and outputs
    /// larger than the untiled ones where the overlap leaves a short last tile (diffusers' arithmetic, kept).
    /// </summary>
    [Theory, MemberData(nameof(TiledVariants))]
    public void TiledEncodeAndDecodeMatchTheDiffusersTranscript(string id)
    {
        using var _ = torch.no_grad();
        using var vae = AutoencoderKL.FromPretrained(Transcript.Path(id));
        vae.EnableTiling();
        using var golden = Transcript.Open();
        using var image = golden.Load(id + "/tiled/image");
        using var z = golden.Load(id + "/tiled/z");
        using var mean = golden.Load(id + "/tiled/encode/mean");
        using var logvar = golden.Load(id + "/tiled/encode/logvar");
        using var decoded = golden.Load(id + "/tiled/decode");
        using (var posterior = vae.Encode(image).LatentDist)
        {
            Check($"{id}: tiled encode mean", posterior.Mean, mean);
            Check($"{id}: tiled encode logvar", posterior.LogVar, logvar);
        }
        using var output = vae.Decode(z).Sample;
        Check($"{id}: tiled decode", output, decoded);
    }
}
