using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>Resampler</c> (IP-Adapter Plus): learned <c>latents</c> (1, num_queries, hidden) attend, layer by
/// layer, over the projected image states joined with themselves (<c>layers.i.0</c>, <c>.1</c>: LayerNorms,
/// <c>.2</c>: <see cref="Attention"/> of 64-wide heads without output bias, <c>.3</c>: LayerNorm + FeedForward (gelu, no
/// bias), each with a residual); then <c>proj_out</c> and <c>norm_out</c>.
/// </summary>
public sealed class Resampler : nn.Module, IImageProjection
{
    private readonly Parameter latents;
    private readonly Linear proj_in;
    private readonly Linear proj_out;
    private readonly LayerNorm norm_out;
    private readonly ModuleList<ModuleList<nn.Module>> layers;

    /// <summary>diffusers' constructor arguments.</summary>
    public Resampler(int embedDims = 768, int outputDims = 1024, int hiddenDims = 1280, int depth = 4, int dimHead = 64,
        int heads = 16, int numQueries = 8, int ffnRatio = 4) : base(nameof(Resampler))
    {
        latents = new Parameter(torch.randn(1, numQueries, hiddenDims) / Math.Sqrt(hiddenDims));
        proj_in = Layers.Linear(embedDims, hiddenDims);
        proj_out = Layers.Linear(hiddenDims, outputDims);
        norm_out = nn.LayerNorm(outputDims, dtype: Layers.BuildDType);
        layers = new ModuleList<ModuleList<nn.Module>>();
        for (int i = 0; i < depth; i++)
        {
            layers.Add(new ModuleList<nn.Module>(
                nn.LayerNorm(hiddenDims, dtype: Layers.BuildDType),
                nn.LayerNorm(hiddenDims, dtype: Layers.BuildDType),
                new Attention(hiddenDims, dimHead: dimHead, heads: heads, outBias: false),
                new ModuleList<nn.Module>(nn.LayerNorm(hiddenDims, dtype: Layers.BuildDType),
                    new FeedForward(hiddenDims, hiddenDims, mult: ffnRatio, activationFn: "gelu", bias: false))));
        }
        NumTokens = numQueries;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public bool TakesHiddenStates => true;

    /// <inheritdoc/>
    public int NumTokens { get; }

    /// <inheritdoc/>
    public Tensor Forward(Tensor imageEmbeds)
    {
        using var scope = torch.NewDisposeScope();
        var lat = latents.repeat(imageEmbeds.shape[0], 1, 1);
        var x = proj_in.forward(imageEmbeds);
        foreach (var layer in layers)
        {
            var ln0 = (LayerNorm)layer[0];
            var ln1 = (LayerNorm)layer[1];
            var attn = (Attention)layer[2];
            var ffSeq = (ModuleList<nn.Module>)layer[3];
            var residual = lat;
            var normed = ln1.forward(lat);
            var context = torch.cat([ln0.forward(x), normed], dim: -2);
            lat = attn.Forward(normed, context) + residual;
            lat = ((FeedForward)ffSeq[1]).Forward(((LayerNorm)ffSeq[0]).forward(lat)) + lat;
        }
        return norm_out.forward(proj_out.forward(lat)).MoveToOuterDisposeScope();
    }
}
