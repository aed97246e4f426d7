namespace DiffusersSharp.Pipelines;

/// <summary>
/// A prompt argument as diffusers takes it: one string, a list of strings, or nothing (default; then
/// prompt embeddings must be given). Converts implicitly from <c>string</c> and <c>string[]</c>.
/// diffusers tells a single string from a one-element list (a negative prompt must have the same kind as the
/// prompt), and so does this.
/// </summary>
public readonly struct PromptInput
{
    private readonly string[]? _items;

    private PromptInput(string[] items, bool isList)
    {
        _items = items;
        IsList = isList;
    }

    /// <summary>A single prompt (diffusers' <c>str</c>).</summary>
    public static PromptInput One(string prompt) => new([prompt ?? throw new ArgumentNullException(nameof(prompt))], false);

    /// <summary>A list of prompts (diffusers' <c>List[str]</c>).</summary>
    public static PromptInput Many(IEnumerable<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var items = prompts.ToArray();
        if (items.Any(p => p is null)) throw new ArgumentException("a prompt list must not contain null", nameof(prompts));
        return new(items, true);
    }

    /// <summary>One prompt (null: none given).</summary>
    public static implicit operator PromptInput(string? prompt) => prompt is null ? default : One(prompt);

    /// <summary>A batch of prompts (null: none given).</summary>
    public static implicit operator PromptInput(string[]? prompts) => prompts is null ? default : Many(prompts);

    /// <summary>A batch of prompts (null: none given).</summary>
    public static implicit operator PromptInput(List<string>? prompts) => prompts is null ? default : Many(prompts);

    /// <summary>True when no prompt was given.</summary>
    public bool IsNone => _items is null;

    /// <summary>True for a list (even of one), false for a single string.</summary>
    public bool IsList { get; }

    /// <summary>The prompts (empty when none).</summary>
    public IReadOnlyList<string> Items => _items ?? [];

    /// <inheritdoc/>
    public override string ToString() =>
        IsNone ? "None" : IsList ? "[" + string.Join(", ", Items.Select(p => "\"" + p + "\"")) + "]" : "\"" + Items[0] + "\"";
}
