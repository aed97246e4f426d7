using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusersSharp.Models;

/// <summary>
/// Reads and writes a list of <see cref="TransformerDepth"/> entries as diffusers' configs hold them: each entry an int
/// or a list of ints. The form is kept as written (<c>[2]</c> is not <c>2</c> inside the list: diffusers reads a list entry
/// per layer), so a config round-trips unchanged. <see cref="TransformerLayersPerBlockJsonConverter"/> also takes one
/// bare int for every block; <see cref="ReverseTransformerLayersJsonConverter"/> takes a list only, as diffusers indexes it.
/// </summary>
internal abstract class TransformerDepthsJsonConverter : JsonConverter<TransformerDepth[]?>
{
    /// <summary>Whether a bare int (one entry for every block) is accepted, and a one-int list written back as it.</summary>
    protected abstract bool BareInt { get; }

    public sealed override bool HandleNull => true;

    public sealed override TransformerDepth[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null) return null;
        if (reader.TokenType == JsonTokenType.Number && BareInt) return [Int(ref reader, "an integer")];
        if (reader.TokenType != JsonTokenType.StartArray)
            throw new JsonException($"expected {(BareInt ? "an integer or " : "")}a list of integers and lists of integers, got {reader.TokenType}");
        var entries = new List<TransformerDepth>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                entries.Add(Int(ref reader, "an integer or a list of integers in the list"));
                continue;
            }
            if (reader.TokenType != JsonTokenType.StartArray)
                throw new JsonException($"expected an integer or a list of integers in the list, got {reader.TokenType}");
            var layers = new List<int>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                layers.Add(reader.TokenType == JsonTokenType.Number ? Int(ref reader, "an integer in the inner list")
                    : throw new JsonException($"expected an integer in the inner list, got {reader.TokenType}"));
            entries.Add(TransformerDepth.PerLayer([.. layers]));
        }
        return [.. entries];
    }

    private static int Int(ref Utf8JsonReader reader, string expected) =>
        reader.TryGetInt32(out int v) ? v : throw new JsonException($"expected {expected}, got {reader.GetDouble()}");

    public sealed override void Write(Utf8JsonWriter writer, TransformerDepth[]? value, JsonSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNullValue();
            return;
        }
        if (BareInt && value is [{ IsPerLayer: false } single])
        {
            writer.WriteNumberValue(single.Depths[0]);
            return;
        }
        writer.WriteStartArray();
        foreach (var entry in value)
        {
            if (!entry.IsPerLayer)
            {
                writer.WriteNumberValue(entry.Depths[0]);
                continue;
            }
            writer.WriteStartArray();
            foreach (var d in entry.Depths) writer.WriteNumberValue(d);
            writer.WriteEndArray();
        }
        writer.WriteEndArray();
    }
}

/// <summary><c>transformer_layers_per_block</c>: an int for every block, or a list of ints and lists of ints per block.</summary>
internal sealed class TransformerLayersPerBlockJsonConverter : TransformerDepthsJsonConverter
{
    protected override bool BareInt => true;
}

/// <summary><c>reverse_transformer_layers_per_block</c>: a list of ints and lists of ints, one per up block.</summary>
internal sealed class ReverseTransformerLayersJsonConverter : TransformerDepthsJsonConverter
{
    protected override bool BareInt => false;
}
