using DiffusersSharp.Models.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

// The building blocks of transformers' CLIP text tower (modeling_clip.py, 4.36), with its submodule names so
// that the weight names of model.safetensors load as they are. The encoder layers serve the vision tower too
// (CLIPVisionModelWithProjection): the same layers, without the causal mask.

/// <summary>
/// What the encoder layers are built from: the text config's or the vision config's widths, heads, activation and
/// LayerNorm epsilon; <see cref="Causal"/>: the text tower's causal self-attention (the vision tower's attends to every patch).
/// </summary>
internal sealed record CLIPEncoderShape(int HiddenSize, int IntermediateSize, int NumAttentionHeads, int NumHiddenLayers,
    string HiddenAct, double LayerNormEps, bool Causal)
{
    public static CLIPEncoderShape Of(CLIPTextConfig c) =>
        new(c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.NumHiddenLayers, c.HiddenAct, c.LayerNormEps, Causal: true);
}

/// <summary><c>ACT2FN[hidden_act]</c> for the activations CLIP configs use.</summary>
internal static class CLIPActivation
{
    public static bool IsSupported(string name) =>
        name is "quick_gelu" or "gelu" or "gelu_new" or "gelu_pytorch_tanh" or "relu" or "silu" or "swish";

    public static Tensor Apply(string name, Tensor x) => name switch
    {
        // x * sigmoid(1.702 x)
        "quick_gelu" => x * torch.sigmoid(x * 1.702),
        "gelu" => nn.functional.gelu(x),
        // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        "gelu_new" or "gelu_pytorch_tanh" =>
            0.5 * x * (1.0 + torch.tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * torch.pow(x, 3.0)))),
        "relu" => nn.functional.relu(x),
        "silu" or "swish" => nn.functional.silu(x),
        _ => throw new ConfigException($"hidden_act '{name}' is not supported") { Key = "hidden_act" },
    };
}

/// <summary><c>CLIPTextEmbeddings</c>: token embedding + position embedding (positions 0..seq-1).</summary>
internal sealed class CLIPTextEmbeddings : nn.Module
{
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;

    public CLIPTextEmbeddings(CLIPTextConfig c) : base(nameof(CLIPTextEmbeddings))
    {
        token_embedding = Layers.Embedding(c.VocabSize, c.HiddenSize);
        position_embedding = Layers.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        // transformers' position_ids buffer is not persistent: it is arange(max_position_embeddings), made here
        // in Forward instead, so files with or without it load the same.
        RegisterComponents();
    }

    public Tensor Weight => token_embedding.weight!;

    /// <summary>
    /// transformers' <c>resize_token_embeddings</c>: a new [n, hidden] token embedding (same dtype and device) whose
    /// first min(n, old) rows are the old ones; rows beyond the old ones start at zero (their users overwrite them).
    /// </summary>
    public void ResizeTokenEmbeddings(long n)
    {
        using var scope = torch.NewDisposeScope();
        using var old = token_embedding.weight!;
        if (n == old.shape[0]) return;
        using var noGrad = torch.no_grad();
        var w = torch.zeros(new[] { n, old.shape[1] }, dtype: old.dtype, device: old.device).DetachFromDisposeScope();
        long keep = Math.Min(n, old.shape[0]);
        using (var dst = w.narrow(0, 0, keep))
        using (var src = old.narrow(0, 0, keep))
            dst.copy_(src);
        var p = new Parameter(w, old.requires_grad);
        p.DetachFromDisposeScope();
        token_embedding.weight = p;
    }

    public Tensor Forward(Tensor inputIds)
    {
        long seq = inputIds.shape[^1];
        using var positions = torch.arange(seq, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        using var tokens = token_embedding.forward(inputIds);
        using var pos = position_embedding.forward(positions);
        return tokens + pos;
    }
}

/// <summary><c>CLIPAttention</c>: multi-head self-attention with biased q/k/v/out projections.</summary>
internal sealed class CLIPAttention : nn.Module
{
    private readonly LoRACompatibleLinear q_proj, k_proj, v_proj, out_proj;
    private readonly int _heads;
    private readonly bool _causal;

    public CLIPAttention(CLIPEncoderShape c) : base(nameof(CLIPAttention))
    {
        _heads = c.NumAttentionHeads;
        _causal = c.Causal;
        k_proj = new LoRACompatibleLinear(c.HiddenSize, c.HiddenSize);
        v_proj = new LoRACompatibleLinear(c.HiddenSize, c.HiddenSize);
        q_proj = new LoRACompatibleLinear(c.HiddenSize, c.HiddenSize);
        out_proj = new LoRACompatibleLinear(c.HiddenSize, c.HiddenSize);
        RegisterComponents();
    }

    /// <param name="mask">Additive float mask [b or 1, 1, s, s], or null for a plain causal mask (none in the vision tower).</param>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], e = x.shape[2], d = e / _heads;
        Tensor Heads(LoRACompatibleLinear proj) => proj.forward(x).view(b, s, _heads, d).transpose(1, 2);
        var q = Heads(q_proj);
        var k = Heads(k_proj);
        var v = Heads(v_proj);
        var attn = mask is not null ? nn.functional.scaled_dot_product_attention(q, k, v, mask)
            : nn.functional.scaled_dot_product_attention(q, k, v, is_casual: _causal);
        var merged = attn.transpose(1, 2).reshape(b, s, e);
        return out_proj.forward(merged).MoveToOuterDisposeScope();
    }
}

/// <summary><c>CLIPMLP</c>: fc1, activation, fc2.</summary>
internal sealed class CLIPMLP : nn.Module
{
    private readonly LoRACompatibleLinear fc1, fc2;
    private readonly string _act;

    public CLIPMLP(CLIPEncoderShape c) : base(nameof(CLIPMLP))
    {
        _act = c.HiddenAct;
        fc1 = new LoRACompatibleLinear(c.HiddenSize, c.IntermediateSize);
        fc2 = new LoRACompatibleLinear(c.IntermediateSize, c.HiddenSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var h = fc1.forward(x);
        using var a = CLIPActivation.Apply(_act, h);
        return fc2.forward(a);
    }
}

/// <summary><c>CLIPEncoderLayer</c>: pre-norm attention and MLP blocks, each with a residual.</summary>
internal sealed class CLIPEncoderLayer : nn.Module
{
    private readonly CLIPAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly CLIPMLP mlp;
    private readonly LayerNorm layer_norm2;

    public CLIPEncoderLayer(CLIPEncoderShape c) : base(nameof(CLIPEncoderLayer))
    {
        self_attn = new CLIPAttention(c);
        layer_norm1 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, dtype: Layers.BuildDType);
        mlp = new CLIPMLP(c);
        layer_norm2 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, dtype: Layers.BuildDType);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var scope = torch.NewDisposeScope();
        var h = x + self_attn.Forward(layer_norm1.forward(x), mask);
        var o = h + mlp.Forward(layer_norm2.forward(h));
        return o.MoveToOuterDisposeScope();
    }
}

/// <summary><c>CLIPEncoder</c>: the stack of layers.</summary>
internal sealed class CLIPEncoder : nn.Module
{
    private readonly ModuleList<CLIPEncoderLayer> layers;

    public CLIPEncoder(CLIPEncoderShape c) : base(nameof(CLIPEncoder))
    {
        layers = new ModuleList<CLIPEncoderLayer>();
        for (int i = 0; i < c.NumHiddenLayers; i++) layers.Add(new CLIPEncoderLayer(c));
        RegisterComponents();
    }

    public IEnumerable<CLIPEncoderLayer> Layers => layers;
}
