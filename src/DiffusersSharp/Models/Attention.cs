using DiffusersSharp.Models.Lora;
using DiffusersSharp.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

/// <summary>
/// diffusers' <c>Attention</c> (models/attention_processor.py, v0.25.1) with its default processor
/// <c>AttnProcessor2_0</c>: scaled-dot-product attention over <c>heads</c> heads of <c>dim_head</c>.
/// Self-attention (no <c>encoderHiddenStates</c>) or cross-attention (keys/values from
/// <c>encoderHiddenStates</c>, of width <c>cross_attention_dim</c>); input (B, L, C) or (B, C, H, W) (then
/// flattened to (B, H·W, C) and back). Optional GroupNorm before the projections (<c>norm_num_groups</c>),
/// residual connection, division by <c>rescale_output_factor</c>, spatial norm, cross-attention norm
/// (layer_norm / group_norm). Weight names: <c>to_q</c>, <c>to_k</c>, <c>to_v</c>, <c>to_out.0</c>,
/// <c>group_norm</c>, <c>spatial_norm</c>, <c>norm_cross</c>.
/// As in diffusers' SDPA processor, <c>upcast_attention</c> / <c>upcast_softmax</c> are recorded but do not
/// change the computation. The added-KV variant (<c>added_kv_proj_dim</c>) is not ported.
/// </summary>
public sealed class Attention : nn.Module
{
    private readonly GroupNorm? group_norm;
    private readonly SpatialNorm? spatial_norm;
    private readonly nn.Module<Tensor, Tensor>? norm_cross;
    private readonly LoRACompatibleLinear to_q;
    private readonly LoRACompatibleLinear to_k;
    private readonly LoRACompatibleLinear to_v;
    private readonly ModuleList<nn.Module> to_out;

    /// <summary>diffusers' <c>query_dim</c>: channels of the hidden states the queries are computed from.</summary>
    public int QueryDim { get; }
    /// <summary>
    /// diffusers' <c>cross_attention_dim</c>: channels of the states keys and values are computed from (= <see
    /// cref="QueryDim"/> for self-attention).
    /// </summary>
    public int CrossAttentionDim { get; }
    /// <summary>
    /// Width of the projected queries, keys and values: <see cref="Heads"/> × <see cref="DimHead"/>.
    /// </summary>
    public int InnerDim { get; }
    /// <summary>Channels of the output projection <c>to_out.0</c>.</summary>
    public int OutDim { get; }
    /// <summary>diffusers' <c>heads</c>: number of attention heads.</summary>
    public int Heads { get; }
    /// <summary>diffusers' <c>dim_head</c>: channels per head.</summary>
    public int DimHead { get; }
    /// <summary>The score scale: 1 / sqrt(<see cref="DimHead"/>) when <see cref="ScaleQk"/>, else 1.</summary>
    public double Scale { get; }
    /// <summary>diffusers' <c>scale_qk</c>: scale the scores by <see cref="Scale"/> (false: by 1).</summary>
    public bool ScaleQk { get; }
    /// <summary>
    /// diffusers' <c>upcast_attention</c>: recorded; the SDPA path ignores it, as diffusers' <c>AttnProcessor2_0</c>
    /// does.
    /// </summary>
    public bool UpcastAttention { get; }
    /// <summary>diffusers' <c>upcast_softmax</c>: recorded; the SDPA path ignores it, as in diffusers.</summary>
    public bool UpcastSoftmax { get; }
    /// <summary>diffusers' <c>only_cross_attention</c> (only valid with <c>added_kv_proj_dim</c>, which is not ported: false).</summary>
    public bool OnlyCrossAttention { get; }
    /// <summary>diffusers' <c>residual_connection</c>: the input is added to the output.</summary>
    public bool ResidualConnection { get; }
    /// <summary>diffusers' <c>rescale_output_factor</c>: the output is divided by this.</summary>
    public double RescaleOutputFactor { get; }
    /// <summary>Dropout probability after the output projection (only active in training).</summary>
    public double DropoutP { get; }
    /// <summary>
    /// diffusers' <c>cross_attention_norm</c>: null, "layer_norm" or "group_norm" on the encoder states.
    /// </summary>
    public string? CrossAttentionNorm { get; }

    /// <summary>
    /// Builds diffusers' <c>Attention</c> from its constructor arguments (same names and defaults, in .NET casing).
    /// </summary>
    public Attention(int queryDim, int? crossAttentionDim = null, int heads = 8, int dimHead = 64, double dropout = 0.0,
        bool bias = false, bool upcastAttention = false, bool upcastSoftmax = false, string? crossAttentionNorm = null,
        int crossAttentionNormNumGroups = 32, int? addedKvProjDim = null, int? normNumGroups = null,
        int? spatialNormDim = null, bool outBias = true, bool scaleQk = true, bool onlyCrossAttention = false,
        double eps = 1e-5, double rescaleOutputFactor = 1.0, bool residualConnection = false, int? outDim = null)
        : base(nameof(Attention))
    {
        if (addedKvProjDim is not null)
            throw new ArgumentException("Attention: added_kv_proj_dim (the AttnAddedKVProcessor variant) is not supported by DiffusersSharp");
        if (onlyCrossAttention)
            throw new ArgumentException("Attention: `only_cross_attention` can only be set to True if `added_kv_proj_dim` is not None");
        if (heads <= 0 || dimHead <= 0)
            throw new ArgumentException($"Attention: heads ({heads}) and dim_head ({dimHead}) must be positive");

        InnerDim = outDim ?? dimHead * heads;
        QueryDim = queryDim;
        CrossAttentionDim = crossAttentionDim ?? queryDim;
        UpcastAttention = upcastAttention;
        UpcastSoftmax = upcastSoftmax;
        RescaleOutputFactor = rescaleOutputFactor;
        ResidualConnection = residualConnection;
        DropoutP = dropout;
        OutDim = outDim ?? queryDim;
        ScaleQk = scaleQk;
        Scale = scaleQk ? Math.Pow(dimHead, -0.5) : 1.0;
        Heads = outDim is int od ? od / dimHead : heads;
        DimHead = dimHead;
        OnlyCrossAttention = onlyCrossAttention;
        CrossAttentionNorm = crossAttentionNorm;

        if (normNumGroups is int g)
            group_norm = Layers.GroupNorm(g, queryDim, eps);
        if (spatialNormDim is int sd)
            spatial_norm = new SpatialNorm(queryDim, sd);
        norm_cross = crossAttentionNorm switch
        {
            null => null,
            "layer_norm" => nn.LayerNorm(CrossAttentionDim, dtype: Layers.BuildDType),
            "group_norm" => Layers.GroupNorm(crossAttentionNormNumGroups, CrossAttentionDim, 1e-5),
            _ => throw new ArgumentException($"Attention: unknown cross_attention_norm '{crossAttentionNorm}'. Should be None, 'layer_norm' or 'group_norm'"),
        };

        to_q = new LoRACompatibleLinear(queryDim, InnerDim, hasBias: bias);
        to_k = new LoRACompatibleLinear(CrossAttentionDim, InnerDim, hasBias: bias);
        to_v = new LoRACompatibleLinear(CrossAttentionDim, InnerDim, hasBias: bias);
        to_out = new ModuleList<nn.Module>(new LoRACompatibleLinear(InnerDim, OutDim, hasBias: outBias), nn.Dropout(dropout));
        RegisterComponents();
    }

    /// <summary>
    /// Attention of <paramref name="hiddenStates"/> ((B, L, C) or (B, C, H, W)) over itself or over
    /// <paramref name="encoderHiddenStates"/> (B, S, cross_attention_dim). <paramref name="attentionMask"/>
    /// is prepared as diffusers' <c>prepare_attention_mask</c> does ((B, 1, S) or (B·heads, 1, S), additive
    /// float or boolean). <paramref name="temb"/> feeds the spatial norm, when there is one.
    /// </summary>
    public Tensor Forward(Tensor hiddenStates, Tensor? encoderHiddenStates = null, Tensor? attentionMask = null, Tensor? temb = null)
    {
        using var scope = torch.NewDisposeScope();
        var residual = hiddenStates;
        var h = hiddenStates;
        if (spatial_norm is not null)
            h = spatial_norm.Forward(h, temb ?? throw new ArgumentException("Attention: the spatial norm needs temb"));

        long inputNdim = h.dim();
        long channel = 0, height = 0, width = 0;
        if (inputNdim == 4)
        {
            (channel, height, width) = (h.shape[1], h.shape[2], h.shape[3]);
            long b = h.shape[0];
            h = h.view(b, channel, height * width);
            // GroupNorm over channels of (B, C, L), then (B, L, C): same as diffusers' transpose/norm/transpose.
            h = (group_norm is not null ? group_norm.forward(h) : h).transpose(1, 2);
        }
        else if (inputNdim == 3)
        {
            if (group_norm is not null)
                h = group_norm.forward(h.transpose(1, 2)).transpose(1, 2);
        }
        else
            throw new ArgumentException($"Attention expects a 3-D (B, L, C) or 4-D (B, C, H, W) input, got {Layers.Shape(h)}");

        long batchSize = (encoderHiddenStates ?? h).shape[0];
        long sequenceLength = (encoderHiddenStates ?? h).shape[1];

        if (attentionMask is not null)
        {
            attentionMask = PrepareAttentionMask(attentionMask, sequenceLength, batchSize);
            attentionMask = attentionMask.view(batchSize, Heads, -1, attentionMask.shape[^1]);
        }

        var query = to_q.forward(h);

        var context = encoderHiddenStates ?? h;
        if (encoderHiddenStates is not null && norm_cross is not null)
            context = NormEncoderHiddenStates(encoderHiddenStates);

        // IP-Adapter (diffusers' IPAdapterAttnProcessor2_0): the last num_tokens states are the image's, attended apart
        Tensor? ipStates = null;
        if (IPAdapter is { } ip && encoderHiddenStates is not null)
            (context, ipStates) = ip.Split(context);

        var key = to_k.forward(context);
        var value = to_v.forward(context);

        long innerDim = key.shape[^1];
        long headDim = innerDim / Heads;
        query = query.view(batchSize, -1, Heads, headDim).transpose(1, 2);
        key = key.view(batchSize, -1, Heads, headDim).transpose(1, 2);
        value = value.view(batchSize, -1, Heads, headDim).transpose(1, 2);
        if (!ScaleQk)
            query = query * Math.Sqrt(headDim); // SDPA scales by 1/sqrt(head_dim); scale_qk = False means no scaling

        h = FusedAttention.ScaledDotProductAttention(query, key, value, attentionMask);
        h = h.transpose(1, 2).reshape(batchSize, -1, Heads * headDim);
        if (ipStates is not null)
            h = h + IPAdapter!.Attend(query, ipStates, Heads, headDim);

        h = ((LoRACompatibleLinear)to_out[0]).forward(h);
        if (DropoutP > 0 && training)
            h = nn.functional.dropout(h, DropoutP, training: true);

        bool inPlace = Activations.InPlaceOk;
        if (inputNdim == 4)
        {
            // diffusers' transpose(-1, -2).reshape(...) as a view with well-formed channels-last strides (also
            // for the batch dimension, so that the next convolution still sees channels-last); made
            // contiguous again when the input was not channels-last, so a NCHW pass stays NCHW.
            h = h.view(batchSize, height, width, channel).permute(0, 3, 1, 2);
            if (!Layers.IsChannelsLast(residual))
                h = h.contiguous();
        }
        if (ResidualConnection)
            h = inPlace ? h.add_(residual) : h + residual;
        if (RescaleOutputFactor != 1.0)
            h = inPlace ? h.div_(RescaleOutputFactor) : h / RescaleOutputFactor;
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The IP-Adapter keys and values of this cross-attention (diffusers sets an <c>IPAdapterAttnProcessor2_0</c> on it),
    /// or null. Set by <see cref="UNet2DConditionModel.LoadIPAdapter(string, IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, Tensor})"/>;
    /// not one of the module's parameters (diffusers' processors are not in the UNet's saved weights either).
    /// </summary>
    internal IPAdapterAttention? IPAdapter { get; set; }

    /// <summary>diffusers' <c>prepare_attention_mask</c> with <c>out_dim = 3</c>.</summary>
    public Tensor PrepareAttentionMask(Tensor attentionMask, long targetLength, long batchSize)
    {
        long currentLength = attentionMask.shape[^1];
        if (currentLength != targetLength)
        {
            // diffusers pads by target_length (not by the difference); kept as is for parity.
            attentionMask = nn.functional.pad(attentionMask, new long[] { 0, targetLength }, PaddingModes.Constant, 0.0);
        }
        if (attentionMask.shape[0] < batchSize * Heads)
            attentionMask = attentionMask.repeat_interleave(Heads, dim: 0);
        return attentionMask;
    }

    /// <summary>diffusers' <c>norm_encoder_hidden_states</c>: the cross-attention norm over the hidden dimension.</summary>
    public Tensor NormEncoderHiddenStates(Tensor encoderHiddenStates)
    {
        if (norm_cross is null)
            throw new InvalidOperationException("Attention: norm_cross must be defined to call NormEncoderHiddenStates");
        if (norm_cross is LayerNorm)
            return norm_cross.forward(encoderHiddenStates);
        return norm_cross.forward(encoderHiddenStates.transpose(1, 2)).transpose(1, 2);
    }
}
