using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusersSharp.Models;

/// <summary>
/// Reads a config value that diffusers allows to be an int or a list of ints (e.g. <c>sample_size</c>:
/// <c>32</c> or <c>[32, 48]</c>) into an <c>int[]</c>; a one-element array is written back as a bare int.
/// </summary>
internal sealed class IntOrIntArrayJsonConverter : JsonConverter<int[]?>
{
    public override bool HandleNull => true;

    public override int[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.Number:
                return new[] { reader.GetInt32() };
            case JsonTokenType.StartArray:
                var list = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number)
                        throw new JsonException($"expected an integer in the list, got {reader.TokenType}");
                    list.Add(reader.GetInt32());
                }
                return list.ToArray();
            default:
                throw new JsonException($"expected an integer or a list of integers, got {reader.TokenType}");
        }
    }

    public override void Write(Utf8JsonWriter writer, int[]? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else if (value.Length == 1) writer.WriteNumberValue(value[0]);
        else
        {
            writer.WriteStartArray();
            foreach (var v in value) writer.WriteNumberValue(v);
            writer.WriteEndArray();
        }
    }
}
