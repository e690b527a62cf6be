fn main() {
    println!("ringbolt");
}
