using DiffusersSharp.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class UNet2DConditionModel
{
    private IImageProjection? _imageProjection;
    private List<IPAdapterAttention>? _ipAttentions;

    /// <summary>
    /// The loaded IP-Adapter's image projection (diffusers' <c>encoder_hid_proj</c> with <c>encoder_hid_dim_type</c>
    /// "ip_image_proj"), or null when none is loaded. Its output joins the encoder states of every <see cref="Forward"/>,
    /// which then needs <see cref="AddedCondKwargs.ImageEmbeds"/>.
    /// </summary>
    public IImageProjection? IPAdapterImageProjection => _imageProjection;

    /// <summary>
    /// diffusers' <c>_load_ip_adapter_weights</c>: an IP-Adapter's two state dicts (<c>image_proj</c>, <c>ip_adapter</c>,
    /// h94/IP-Adapter's key names). The image projection is told by its keys (<c>proj.weight</c>: <see cref="ImageProjection"/>
    /// of 4 tokens; <c>proj.3.weight</c>: <see cref="MLPProjection"/>, 257 tokens; else <see cref="Resampler"/>, its
    /// keys converted as diffusers converts them); every cross-attention (not <c>attn1</c>) gets <c>to_k_ip</c> /
    /// <c>to_v_ip</c> from <c>ip_adapter["{n}.to_k_ip.weight"]</c>, n = 1, 3, 5, … in diffusers' <c>attn_processors</c> order
    /// (down blocks, up blocks, mid block), scale 1. Replaces an adapter loaded before. A missing, unexpected or
    /// misshapen tensor is a <see cref="WeightsException"/> naming <paramref name="source"/> and the key; nothing is
    /// changed then. The weights are the UNet's dtype and device (not in its saved weights, as in diffusers).
    /// </summary>
    public void LoadIPAdapter(string source, IReadOnlyDictionary<string, Tensor> imageProj, IReadOnlyDictionary<string, Tensor> ipAdapter)
    {
        ArgumentNullException.ThrowIfNull(imageProj);
        ArgumentNullException.ThrowIfNull(ipAdapter);
        if (Config.EncoderHidDimType is not null)
            throw new DiffusersException($"{source}: this UNet has encoder_hid_dim_type '{Config.EncoderHidDimType}', whose encoder_hid_proj an IP-Adapter would replace; IP-Adapters load onto UNets without one");
        if (Config.CrossAttentionDim.Length != 1)
            throw new DiffusersException($"{source}: an IP-Adapter needs one cross_attention_dim; this UNet has one per block ({string.Join(", ", Config.CrossAttentionDim)})");
        int cross = Config.CrossAttentionDim[0];
        var dtype = DType;
        var device = conv_in.weight!.device;
        var built = new List<nn.Module>();
        try
        {
            var projection = BuildImageProjection(source, imageProj);
            built.Add((nn.Module)projection);
            var targets = CrossAttentions();
            var attentions = new List<IPAdapterAttention>();
            var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            for (int n = 0; n < targets.Count; n++)
            {
                var (attn, hidden, path) = targets[n];
                var ip = new IPAdapterAttention(hidden, cross, projection.NumTokens);
                built.Add(ip);
                attentions.Add(ip);
                foreach (var k in new[] { "to_k_ip.weight", "to_v_ip.weight" })
                {
                    string key = $"{2 * n + 1}.{k}";
                    weights[$"{n}.{k}"] = ipAdapter.TryGetValue(key, out var w) ? w
                        : throw new WeightsException($"{source}: ip_adapter key '{key}' is missing (the weights of {path}; this UNet has {targets.Count} cross-attentions, keys 1 to {2 * targets.Count - 1})") { FilePath = source, Key = "ip_adapter." + key };
                    var want = new long[] { hidden, cross };
                    if (!weights[$"{n}.{k}"].shape.SequenceEqual(want))
                        throw new WeightsException($"{source}: ip_adapter key '{key}' has shape {Layers.Shape(weights[$"{n}.{k}"])}, {path} needs [{hidden}, {cross}] (its width, the UNet's cross_attention_dim)") { FilePath = source, Key = "ip_adapter." + key };
                }
            }
            var extra = ipAdapter.Keys.FirstOrDefault(k => !Enumerable.Range(0, targets.Count).Any(n => k == $"{2 * n + 1}.to_k_ip.weight" || k == $"{2 * n + 1}.to_v_ip.weight"));
            if (extra is not null)
                throw new WeightsException($"{source}: ip_adapter key '{extra}' matches none of this UNet's {targets.Count} cross-attentions (keys 1 to {2 * targets.Count - 1}, to_k_ip / to_v_ip); is the adapter for another model?") { FilePath = source, Key = "ip_adapter." + extra };
            using (torch.no_grad())
                for (int n = 0; n < attentions.Count; n++)
                    WeightLoader.LoadInto(attentions[n], new Dictionary<string, Tensor>
                    {
                        ["to_k_ip.weight"] = weights[$"{n}.to_k_ip.weight"],
                        ["to_v_ip.weight"] = weights[$"{n}.to_v_ip.weight"],
                    }, source);
            foreach (var m in built)
            {
                m.to(dtype).to(device);
                m.eval();
                ModuleScope.Detach(m);
            }
            UnloadIPAdapterCore();
            _imageProjection = projection;
            _ipAttentions = attentions;
            for (int n = 0; n < targets.Count; n++) targets[n].Attention.IPAdapter = attentions[n];
        }
        catch
        {
            foreach (var m in built) m.Dispose();
            throw;
        }
    }

    /// <summary>diffusers' <c>set_ip_adapter_scale</c>: the weight of the image attention in every cross-attention.</summary>
    public void SetIPAdapterScale(double scale)
    {
        if (_ipAttentions is null)
            throw new InvalidOperationException("SetIPAdapterScale: no IP-Adapter is loaded (LoadIPAdapter first)");
        if (!double.IsFinite(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "the IP-Adapter scale must be a finite number");
        foreach (var a in _ipAttentions) a.Scale = scale;
    }

    /// <summary>
    /// The scale of every IP-Adapter attention, in order (null when no adapter is loaded): what
    /// <see cref="RestoreIPAdapterScales"/> puts back. The generation service saves them before a request's own scale and
    /// restores them after its run.
    /// </summary>
    internal double[]? SaveIPAdapterScales() => _ipAttentions?.Select(a => a.Scale).ToArray();

    /// <summary>Puts back the scales <see cref="SaveIPAdapterScales"/> returned (nothing when it returned null or the adapter changed since).</summary>
    internal void RestoreIPAdapterScales(double[]? saved)
    {
        if (saved is null || _ipAttentions is null || saved.Length != _ipAttentions.Count) return;
        for (int i = 0; i < saved.Length; i++) _ipAttentions[i].Scale = saved[i];
    }

    /// <summary>
    /// The cross-attentions diffusers gives IP-Adapter processors, in its <c>attn_processors</c> order (down blocks, up
    /// blocks, mid block; within a block its modules' order), each with its block's width (diffusers' <c>hidden_size</c>).
    /// </summary>
    private List<(Attention Attention, int Hidden, string Path)> CrossAttentions()
    {
        var boc = Config.BlockOutChannels;
        var list = new List<(Attention, int, string)>();
        void Add(nn.Module block, string prefix, int hidden)
        {
            foreach (var (name, module) in block.named_modules())
                if (module is Attention a && !name.EndsWith("attn1", StringComparison.Ordinal))
                    list.Add((a, hidden, prefix + "." + name));
        }
        for (int i = 0; i < down_blocks.Count; i++) Add(down_blocks[i], $"down_blocks.{i}", boc[i]);
        for (int i = 0; i < up_blocks.Count; i++) Add(up_blocks[i], $"up_blocks.{i}", boc[boc.Length - 1 - i]);
        if (mid_block is not null) Add(mid_block, "mid_block", boc[^1]);
        return list;
    }

    private static IImageProjection BuildImageProjection(string source, IReadOnlyDictionary<string, Tensor> sd)
    {
        Tensor Get(string key) => sd.TryGetValue(key, out var t) ? t
            : throw new WeightsException($"{source}: image_proj key '{key}' is missing") { FilePath = source, Key = "image_proj." + key };
        IImageProjection projection;
        var converted = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var temporaries = new List<Tensor>();
        try
        {
            if (sd.ContainsKey("proj.weight"))
            {
                var w = Get("proj.weight");
                projection = new ImageProjection((int)w.shape[^1], (int)(w.shape[0] / 4), 4);
                foreach (var (k, v) in sd) converted[k.Replace("proj", "image_embeds", StringComparison.Ordinal)] = v;
            }
            else if (sd.ContainsKey("proj.3.weight"))
            {
                projection = new MLPProjection((int)Get("proj.0.weight").shape[0], (int)Get("proj.3.weight").shape[0]);
                foreach (var (k, v) in sd)
                    converted[k.Replace("proj.0", "ff.net.0.proj", StringComparison.Ordinal).Replace("proj.2", "ff.net.2", StringComparison.Ordinal)
                        .Replace("proj.3", "norm", StringComparison.Ordinal)] = v;
            }
            else
            {
                var latents = Get("latents");
                if (latents.dim() != 3)
                    throw new WeightsException($"{source}: image_proj key 'latents' has shape {Layers.Shape(latents)}, a Resampler's is [1, num_queries, hidden_dims]") { FilePath = source, Key = "image_proj.latents" };
                int depth = 0;
                while (sd.ContainsKey($"layers.{depth}.0.to_q.weight")) depth++;
                projection = new Resampler((int)Get("proj_in.weight").shape[1], (int)Get("proj_out.weight").shape[0], (int)latents.shape[2],
                    heads: (int)(Get("layers.0.0.to_q.weight").shape[0] / 64), numQueries: (int)latents.shape[1]);
                foreach (var (k, v) in sd)
                {
                    string name = k.Replace("0.to", "2.to", StringComparison.Ordinal).Replace("1.0.weight", "3.0.weight", StringComparison.Ordinal)
                        .Replace("1.0.bias", "3.0.bias", StringComparison.Ordinal).Replace("1.1.weight", "3.1.net.0.proj.weight", StringComparison.Ordinal)
                        .Replace("1.3.weight", "3.1.net.2.weight", StringComparison.Ordinal);
                    if (name.Contains("norm1", StringComparison.Ordinal)) converted[name.Replace("0.norm1", "0", StringComparison.Ordinal)] = v;
                    else if (name.Contains("norm2", StringComparison.Ordinal)) converted[name.Replace("0.norm2", "1", StringComparison.Ordinal)] = v;
                    else if (name.Contains("to_kv", StringComparison.Ordinal))
                    {
                        var chunks = v.chunk(2, 0);
                        temporaries.AddRange(chunks);
                        converted[name.Replace("to_kv", "to_k", StringComparison.Ordinal)] = chunks[0];
                        converted[name.Replace("to_kv", "to_v", StringComparison.Ordinal)] = chunks[1];
                    }
                    else if (name.Contains("to_out", StringComparison.Ordinal)) converted[name.Replace("to_out", "to_out.0", StringComparison.Ordinal)] = v;
                    else converted[name] = v;
                }
            }
            try
            {
                using (torch.no_grad()) WeightLoader.LoadInto((nn.Module)projection, converted, source + " (image_proj)");
            }
            catch
            {
                projection.Dispose();
                throw;
            }
            return projection;
        }
        finally
        {
            foreach (var t in temporaries) t.Dispose();
        }
    }

    /// <summary>diffusers' "ip_image_proj" step of forward: the projected image states joined after the text states.</summary>
    private Tensor WithImageStates(Tensor encoderHiddenStates, AddedCondKwargs? addedCondKwargs)
    {
        var embeds = addedCondKwargs?.ImageEmbeds
            ?? throw new ArgumentException("UNet2DConditionModel: an IP-Adapter is loaded (encoder_hid_dim_type 'ip_image_proj'), which requires added_cond_kwargs image_embeds", "addedCondKwargs");
        var p = _imageProjection!;
        if (embeds.shape[0] != encoderHiddenStates.shape[0])
            throw new ArgumentException($"UNet2DConditionModel: image_embeds batch {embeds.shape[0]} != encoder_hidden_states batch {encoderHiddenStates.shape[0]}", "addedCondKwargs");
        var projected = p.Forward(embeds.to(DType));
        if (projected.shape[1] != p.NumTokens)
            throw new ArgumentException($"UNet2DConditionModel: the IP-Adapter's image projection made {projected.shape[1]} tokens from image_embeds {Layers.Shape(embeds)}, its attention expects {p.NumTokens}", "addedCondKwargs");
        return torch.cat([encoderHiddenStates, projected.to(encoderHiddenStates.dtype)], dim: 1);
    }

    private void UnloadIPAdapterCore()
    {
        foreach (var (a, _, _) in CrossAttentions()) a.IPAdapter = null;
        _imageProjection?.Dispose();
        if (_ipAttentions is not null) foreach (var a in _ipAttentions) a.Dispose();
        _imageProjection = null;
        _ipAttentions = null;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) UnloadIPAdapterCore();
        base.Dispose(disposing);
    }
}
