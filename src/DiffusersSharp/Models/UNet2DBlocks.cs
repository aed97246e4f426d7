namespace DiffusersSharp.Models;

/// <summary>
/// The registry of UNet block types: diffusers' type names (<c>down_block_types</c>, <c>up_block_types</c>,
/// <c>mid_block_type</c>) mapped to factories, once; building a UNet and validating its config both read it. The
/// factories are diffusers' <c>get_down_block</c> / <c>get_up_block</c> (models/unet_2d_blocks.py, v0.25.1) and the
/// mid blocks of <c>UNet2DConditionModel</c>. A "UNetRes" prefix is dropped, as in diffusers. A new block type is a
/// new class and one line here.
/// </summary>
public static class UNet2DBlocks
{
    /// <summary>A registered type: its name, whether it needs a cross-attention context, and its factory.</summary>
    private sealed record Entry<T>(string Name, bool CrossAttention, Func<UNetBlockArgs, T> Create)
    {
        /// <summary>The block builds its norms without <c>resnet_groups</c> (the K blocks: channels / 32 groups), so a
        /// UNet of only such blocks may have <c>norm_num_groups</c> null.</summary>
        public bool OwnNormGroups { get; init; }
    }

    private static readonly Entry<UNetDownBlock>[] Down =
    [
        new("DownBlock2D", false, a => new DownBlock2D(a.InChannels, a.OutChannels, a.TembChannels, a.Dropout,
            a.NumLayers, a.ResnetEps, a.ResnetTimeScaleShift, a.ResnetActFn, a.ResnetGroups ?? 32,
            addDownsample: a.AddDownsample, downsamplePadding: a.DownsamplePadding ?? 1)),
        new("AttnDownBlock2D", false, a => new AttnDownBlock2D(a.InChannels, a.OutChannels, a.TembChannels, a.Dropout,
            a.NumLayers, a.ResnetEps, a.ResnetTimeScaleShift, a.ResnetActFn, a.ResnetGroups ?? 32,
            attentionHeadDim: a.AttentionHeadDim ?? a.NumAttentionHeads, downsamplePadding: a.DownsamplePadding ?? 1,
            downsampleType: a.AddDownsample ? a.DownsampleType ?? "conv" : null)),
        new("ResnetDownsampleBlock2D", false, a => new ResnetDownsampleBlock2D(a.InChannels, a.OutChannels,
            a.TembChannels, a.Dropout, a.NumLayers, a.ResnetEps, a.ResnetTimeScaleShift, a.ResnetActFn,
            a.ResnetGroups ?? 32, addDownsample: a.AddDownsample, skipTimeAct: a.ResnetSkipTimeAct,
            outputScaleFactor: a.ResnetOutScaleFactor)),
        new("CrossAttnDownBlock2D", true, a => new CrossAttnDownBlock2D(a.InChannels, a.OutChannels, a.TembChannels,
            a.Dropout, a.NumLayers, a.TransformerLayersPerBlock, a.ResnetEps, a.ResnetTimeScaleShift, a.ResnetActFn,
            a.ResnetGroups ?? 32, numAttentionHeads: a.NumAttentionHeads ?? 1,
            crossAttentionDim: CrossAttentionDim(a, "CrossAttnDownBlock2D"), downsamplePadding: a.DownsamplePadding ?? 1,
            addDownsample: a.AddDownsample, dualCrossAttention: a.DualCrossAttention,
            useLinearProjection: a.UseLinearProjection, onlyCrossAttention: a.OnlyCrossAttention,
            upcastAttention: a.UpcastAttention, attentionType: a.AttentionType)),
        new("KDownBlock2D", false, a => new KDownBlock2D(a.InChannels, a.OutChannels, TembChannels(a, "KDownBlock2D"),
            a.Dropout, a.NumLayers, a.ResnetEps, a.ResnetActFn, addDownsample: a.AddDownsample)) { OwnNormGroups = true },
        new("KCrossAttnDownBlock2D", true, a => new KCrossAttnDownBlock2D(a.InChannels, a.OutChannels,
            TembChannels(a, "KCrossAttnDownBlock2D"), CrossAttentionDim(a, "KCrossAttnDownBlock2D"), a.Dropout, a.NumLayers,
            addDownsample: a.AddDownsample, attentionHeadDim: a.AttentionHeadDim ?? a.OutChannels,
            addSelfAttention: !a.AddDownsample, resnetEps: a.ResnetEps, resnetActFn: a.ResnetActFn)) { OwnNormGroups = true },
    ];

    private static readonly Entry<UNetUpBlock>[] Up =
    [
        new("UpBlock2D", false, a => new UpBlock2D(a.InChannels, a.PrevOutputChannel, a.OutChannels, a.TembChannels,
            a.ResolutionIdx, a.Dropout, a.NumLayers, a.ResnetEps, a.ResnetTimeScaleShift, a.ResnetActFn,
            a.ResnetGroups ?? 32, addUpsample: a.AddUpsample)),
        new("AttnUpBlock2D", false, a => new AttnUpBlock2D(a.InChannels, a.PrevOutputChannel, a.OutChannels,
            a.TembChannels, a.ResolutionIdx, a.Dropout, a.NumLayers, a.ResnetEps, a.ResnetTimeScaleShift,
            a.ResnetActFn, a.ResnetGroups ?? 32, attentionHeadDim: a.AttentionHeadDim ?? a.NumAttentionHeads,
            upsampleType: a.AddUpsample ? a.UpsampleType ?? "conv" : null)),
        new("ResnetUpsampleBlock2D", false, a => new ResnetUpsampleBlock2D(a.InChannels, a.PrevOutputChannel,
            a.OutChannels, a.TembChannels, a.ResolutionIdx, a.Dropout, a.NumLayers, a.ResnetEps,
            a.ResnetTimeScaleShift, a.ResnetActFn, a.ResnetGroups ?? 32, addUpsample: a.AddUpsample,
            skipTimeAct: a.ResnetSkipTimeAct, outputScaleFactor: a.ResnetOutScaleFactor)),
        new("CrossAttnUpBlock2D", true, a => new CrossAttnUpBlock2D(a.InChannels, a.OutChannels, a.PrevOutputChannel,
            a.TembChannels, a.ResolutionIdx, a.Dropout, a.NumLayers, a.TransformerLayersPerBlock, a.ResnetEps,
            a.ResnetTimeScaleShift, a.ResnetActFn, a.ResnetGroups ?? 32, numAttentionHeads: a.NumAttentionHeads ?? 1,
            crossAttentionDim: CrossAttentionDim(a, "CrossAttnUpBlock2D"), addUpsample: a.AddUpsample,
            dualCrossAttention: a.DualCrossAttention, useLinearProjection: a.UseLinearProjection,
            onlyCrossAttention: a.OnlyCrossAttention, upcastAttention: a.UpcastAttention, attentionType: a.AttentionType)),
        new("KUpBlock2D", false, a => new KUpBlock2D(a.InChannels, a.OutChannels, TembChannels(a, "KUpBlock2D"),
            a.ResolutionIdx, a.Dropout, a.NumLayers, a.ResnetEps, a.ResnetActFn, addUpsample: a.AddUpsample)) { OwnNormGroups = true },
        new("KCrossAttnUpBlock2D", true, a => new KCrossAttnUpBlock2D(a.InChannels, a.OutChannels,
            TembChannels(a, "KCrossAttnUpBlock2D"), a.ResolutionIdx, a.Dropout, a.NumLayers, a.ResnetEps, a.ResnetActFn,
            attentionHeadDim: a.AttentionHeadDim ?? a.OutChannels, crossAttentionDim: CrossAttentionDim(a, "KCrossAttnUpBlock2D"),
            addUpsample: a.AddUpsample)) { OwnNormGroups = true },
    ];

    // UNet2DConditionModel's mid_block_type (diffusers builds these inline in unet_2d_condition.py)
    private static readonly Entry<UNetMidBlock>[] Mid =
    [
        new("UNetMidBlock2DCrossAttn", true, a => new UNetMidBlock2DCrossAttn(a.InChannels, a.TembChannels, a.Dropout,
            transformerLayersPerBlock: a.TransformerLayersPerBlock, resnetEps: a.ResnetEps,
            resnetTimeScaleShift: a.ResnetTimeScaleShift, resnetActFn: a.ResnetActFn, resnetGroups: a.ResnetGroups,
            numAttentionHeads: a.NumAttentionHeads ?? 1, outputScaleFactor: a.OutputScaleFactor,
            crossAttentionDim: CrossAttentionDim(a, "UNetMidBlock2DCrossAttn"), dualCrossAttention: a.DualCrossAttention,
            useLinearProjection: a.UseLinearProjection, upcastAttention: a.UpcastAttention, attentionType: a.AttentionType)),
        new("UNetMidBlock2D", false, a => new UNetMidBlock2D(a.InChannels, a.TembChannels, a.Dropout, numLayers: 0,
            resnetEps: a.ResnetEps, resnetActFn: a.ResnetActFn, outputScaleFactor: a.OutputScaleFactor,
            resnetGroups: a.ResnetGroups, resnetTimeScaleShift: a.ResnetTimeScaleShift, addAttention: false)),
    ];

    // diffusers 0.25.1 types that DiffusersSharp does not port (named so that errors can say so)
    private static readonly HashSet<string> NotPorted = new(StringComparer.Ordinal)
    {
        "SimpleCrossAttnDownBlock2D", "SkipDownBlock2D", "AttnSkipDownBlock2D", "DownEncoderBlock2D",
        "AttnDownEncoderBlock2D",
        "SimpleCrossAttnUpBlock2D", "SkipUpBlock2D", "AttnSkipUpBlock2D", "UpDecoderBlock2D", "AttnUpDecoderBlock2D",
        "UNetMidBlock2DSimpleCrossAttn",
    };

    /// <summary>The down block types, in registry order; with <paramref name="crossAttention"/> false only those that need no context.</summary>
    public static IReadOnlyList<string> DownBlockTypes(bool crossAttention = true) => Names(Down, crossAttention);

    /// <summary>The up block types, in registry order; with <paramref name="crossAttention"/> false only those that need no context.</summary>
    public static IReadOnlyList<string> UpBlockTypes(bool crossAttention = true) => Names(Up, crossAttention);

    /// <summary>The mid block types <c>mid_block_type</c> may name (besides null: no mid block).</summary>
    public static IReadOnlyList<string> MidBlockTypes => Names(Mid, true);

    /// <summary>
    /// Whether <paramref name="type"/> names a registered down block (one without cross-attention when <paramref
    /// name="crossAttention"/> is false).
    /// </summary>
    public static bool IsDownBlock(string type, bool crossAttention = true) => Find(Down, type, crossAttention) is not null;
    /// <summary>
    /// Whether <paramref name="type"/> names a registered up block (one without cross-attention when <paramref
    /// name="crossAttention"/> is false).
    /// </summary>
    public static bool IsUpBlock(string type, bool crossAttention = true) => Find(Up, type, crossAttention) is not null;
    /// <summary>Whether <paramref name="type"/> names a registered mid block.</summary>
    public static bool IsMidBlock(string type) => Find(Mid, type, true) is not null;

    /// <summary>True for a registered type that attends to encoder hidden states.</summary>
    public static bool NeedsCrossAttention(string type) =>
        Find(Down, type, true)?.CrossAttention ?? Find(Up, type, true)?.CrossAttention
        ?? Find(Mid, type, true)?.CrossAttention ?? false;

    /// <summary>
    /// True for a registered type that builds its norms without <c>resnet_groups</c> (so with <c>norm_num_groups</c>
    /// null); false for any other registered type and for unknown names.
    /// </summary>
    public static bool OwnsNormGroups(string type) =>
        (Find(Down, type, true)?.OwnNormGroups ?? Find(Up, type, true)?.OwnNormGroups ?? Find(Mid, type, true)?.OwnNormGroups) == true;

    /// <summary>True for a diffusers 0.25.1 block type that DiffusersSharp does not port.</summary>
    public static bool IsNotPorted(string type) => NotPorted.Contains(Strip(type));

    /// <summary>
    /// diffusers' <c>get_down_block</c>: builds the registered down block <paramref name="downBlockType"/> from
    /// <paramref name="args"/>.
    /// </summary>
    public static UNetDownBlock GetDownBlock(string downBlockType, UNetBlockArgs args) => Create(Down, downBlockType, args);
    /// <summary>
    /// diffusers' <c>get_up_block</c>: builds the registered up block <paramref name="upBlockType"/> from <paramref
    /// name="args"/>.
    /// </summary>
    public static UNetUpBlock GetUpBlock(string upBlockType, UNetBlockArgs args) => Create(Up, upBlockType, args);
    /// <summary>
    /// Builds the registered mid block <paramref name="midBlockType"/> from <paramref name="args"/>.
    /// </summary>
    public static UNetMidBlock GetMidBlock(string midBlockType, UNetBlockArgs args) => Create(Mid, midBlockType, args);

    private static string Strip(string type) => type.StartsWith("UNetRes", StringComparison.Ordinal) ? type[7..] : type;

    private static Entry<T>? Find<T>(Entry<T>[] entries, string type, bool crossAttention) =>
        entries.FirstOrDefault(e => e.Name == Strip(type) && (crossAttention || !e.CrossAttention));

    private static IReadOnlyList<string> Names<T>(Entry<T>[] entries, bool crossAttention) =>
        entries.Where(e => crossAttention || !e.CrossAttention).Select(e => e.Name).ToArray();

    private static T Create<T>(Entry<T>[] entries, string type, UNetBlockArgs args) =>
        (Find(entries, type, true) ?? throw new ArgumentException($"{type} does not exist.")).Create(args);

    private static int TembChannels(UNetBlockArgs a, string type) =>
        a.TembChannels ?? throw new ArgumentException($"temb_channels must be specified for {type}");

    private static int CrossAttentionDim(UNetBlockArgs a, string type) =>
        a.CrossAttentionDim ?? throw new ArgumentException($"cross_attention_dim must be specified for {type}");
}
