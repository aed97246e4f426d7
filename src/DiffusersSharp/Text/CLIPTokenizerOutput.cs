using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Text;

/// <summary>
/// What <see cref="CLIPTokenizer.Call(IReadOnlyList{string}, PaddingStrategy, int?, bool)"/> returns: per prompt
/// the token ids and attention mask (1 = token, 0 = padding), and what truncation removed.
/// </summary>
public sealed class CLIPTokenizerOutput
{
    /// <summary>Wraps the tokenizer's results for each prompt.</summary>
    public CLIPTokenizerOutput(long[][] inputIds, long[][] attentionMask, int[][] removedIds, IReadOnlyList<string> warnings)
    {
        InputIds = inputIds;
        AttentionMask = attentionMask;
        RemovedIds = removedIds;
        Warnings = warnings;
    }

    /// <summary>Token ids per prompt (BOS … EOS, then padding).</summary>
    public long[][] InputIds { get; }

    /// <summary>1 for real tokens, 0 for padding, per prompt.</summary>
    public long[][] AttentionMask { get; }

    /// <summary>Per prompt, the token ids truncation dropped (empty when the prompt fitted).</summary>
    public int[][] RemovedIds { get; }

    /// <summary>True when at least one prompt was truncated.</summary>
    public bool Truncated => RemovedIds.Any(r => r.Length > 0);

    /// <summary>
    /// One line per truncated prompt, worded as diffusers' warning ("The following part of your input was
    /// truncated because CLIP can only handle sequences up to 77 tokens: …"), or transformers' error for a prompt
    /// too short to cut ("We need to remove … to truncate the input but the first sequence has a length …").
    /// </summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary><see cref="InputIds"/> as an int64 tensor [batch, length] (all rows must have one length).</summary>
    public Tensor InputIdsTensor(Device? device = null) => ToTensor(InputIds, "input_ids", device);

    /// <summary><see cref="AttentionMask"/> as an int64 tensor [batch, length].</summary>
    public Tensor AttentionMaskTensor(Device? device = null) => ToTensor(AttentionMask, "attention_mask", device);

    private static Tensor ToTensor(long[][] rows, string what, Device? device)
    {
        int n = rows.Length;
        int len = n == 0 ? 0 : rows[0].Length;
        if (rows.Any(r => r.Length != len))
            throw new DiffusersException(
                $"Cannot make a tensor of {what}: the rows have different lengths ({string.Join(", ", rows.Select(r => r.Length).Distinct())}); pad them (padding MaxLength or Longest)");
        var flat = new long[n * len];
        for (int i = 0; i < n; i++) Array.Copy(rows[i], 0, flat, i * len, len);
        using var scope = torch.NewDisposeScope();
        var t = tensor(flat, [n, len], ScalarType.Int64);
        return (device is null ? t : t.to(device)).MoveToOuterDisposeScope();
    }
}
